// By value an OffsetPtr is only ever null: a target set on the stack would aim outside the
// segment the value is then constructed in.
use shmkit::OffsetPtr;

fn main() {
    let target = 7u64;
    let mut p = OffsetPtr::<u64>::null();
    p.set(&target);
}
