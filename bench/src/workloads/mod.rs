//! The workload groups, one file each, and the table the CLI dispatches on.

pub mod alloc;
pub mod alloc_free_fixed;
pub mod alloc_free_mixed;
pub mod alloc_free_mt;
pub mod alloc_many_free;
pub mod alloc_many_free_growing;
pub mod baseline_std;
pub mod create_segment;
pub mod message_queue;
pub mod mutex_uncontended;
pub mod named;
pub mod nodes;
pub mod open_existing;
pub mod pingpong;
pub mod rwlock;
pub mod segment_maps;
pub mod string_vec;
pub mod vec_push;

/// A workload group: one process runs it and it prints all of its lines.
pub struct Group {
    pub name: &'static str,
    pub run: fn(),
}

/// Implemented groups, in the peer's `run.sh all` order.
pub const GROUPS: &[Group] = &[
    Group {
        name: "alloc_free_fixed",
        run: alloc_free_fixed::run,
    },
    Group {
        name: "alloc_free_mixed",
        run: alloc_free_mixed::run,
    },
    Group {
        name: "alloc_many_free",
        run: alloc_many_free::run,
    },
    Group {
        name: "alloc_free_mt",
        run: alloc_free_mt::run,
    },
    Group {
        name: "alloc_many_free_growing",
        run: alloc_many_free_growing::run,
    },
    Group {
        name: "named",
        run: named::run,
    },
    Group {
        name: "vec_push",
        run: vec_push::run,
    },
    Group {
        name: "map",
        run: segment_maps::run_ordered,
    },
    Group {
        name: "map_nodealloc",
        run: segment_maps::run_ordered_nodealloc,
    },
    Group {
        name: "list_push_pop",
        run: nodes::run_list,
    },
    Group {
        name: "arc_new_drop",
        run: nodes::run_arc,
    },
    Group {
        name: "node_alloc",
        run: nodes::run_node_alloc,
    },
    Group {
        name: "unordered_map",
        run: segment_maps::run_unordered,
    },
    Group {
        name: "string_vec",
        run: string_vec::run,
    },
    Group {
        name: "open_existing",
        run: open_existing::run,
    },
    Group {
        name: "open_existing_populated",
        run: open_existing::run_populated,
    },
    Group {
        name: "create_segment",
        run: create_segment::run,
    },
    Group {
        name: "pingpong",
        run: pingpong::run,
    },
    Group {
        name: "pingpong_samecpu",
        run: pingpong::run_samecpu,
    },
    Group {
        name: "mq_pingpong",
        run: message_queue::run_pingpong,
    },
    Group {
        name: "mq_pingpong_samecpu",
        run: message_queue::run_pingpong_samecpu,
    },
    Group {
        name: "mq_pingpong_poll",
        run: message_queue::run_pingpong_poll,
    },
    Group {
        name: "mq_throughput",
        run: message_queue::run_throughput,
    },
    Group {
        name: "posix_mq",
        run: message_queue::run_posix,
    },
    Group {
        name: "handoff_latency",
        run: pingpong::run_handoff_latency,
    },
    Group {
        name: "mutex_uncontended",
        run: mutex_uncontended::run,
    },
    Group {
        name: "baseline_std",
        run: baseline_std::run,
    },
    Group {
        name: "rwlock",
        run: rwlock::run,
    },
];

/// Parts of `baseline_std` that can be run on their own (the peer's aliases).
pub const STD_PARTS: &[Group] = &[
    Group {
        name: "std_alloc",
        run: baseline_std::run_alloc,
    },
    Group {
        name: "std_vec",
        run: baseline_std::run_vec,
    },
    Group {
        name: "std_map",
        run: baseline_std::run_map,
    },
    Group {
        name: "std_unordered_map",
        run: baseline_std::run_unordered_map,
    },
    Group {
        name: "std_list",
        run: nodes::run_std_list,
    },
    Group {
        name: "std_arc",
        run: nodes::run_std_arc,
    },
    Group {
        name: "std_string_vec",
        run: baseline_std::run_string_vec,
    },
];

/// The group or part called `name`, if it is implemented.
pub fn find(name: &str) -> Option<&'static Group> {
    GROUPS.iter().chain(STD_PARTS).find(|g| g.name == name)
}
