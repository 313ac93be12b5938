//! `shmkit`: the inspector of shmkit segments. Lists, describes, checks, dumps and maps
//! segments in `/dev/shm`, in files and in System V (XSI) shared memory, and removes what
//! crashed processes left behind.
//! It changes nothing unless the command says so (`rm`, `gc --yes`); see `target::open`
//! for how it reads a live segment.

mod report;
mod target;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use target::Target;

/// Inspect shmkit shared-memory segments: list, describe, check, dump, map, clean up.
///
/// A SEGMENT is a shared memory object's name (as in /dev/shm), a path to a mapped file
/// (anything with a `/`), or `xsi:KEY` for a System V segment (KEY as `ipcs` shows it,
/// `0x` and hex digits, or decimal). Exit status: 0 success, 1 the segment is not sound
/// (corrupt, not a shmkit segment, not readable as one), 2 the command could not run
/// (usage, no such segment, permission, in use).
#[derive(Parser, Debug)]
#[command(name = "shmkit", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Seconds to wait for a segment's locks held by a live process before giving up.
    #[arg(long, global = true, default_value_t = 5.0, value_parser = seconds)]
    wait: f64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the shmkit segments in /dev/shm, in System V shared memory (named `xsi:KEY`;
    /// ATTACHED is then the kernel's attachment count) and the files given (others are
    /// skipped).
    Ls {
        /// Files (or /dev/shm names, or xsi:KEY) to list as well.
        paths: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe a segment: header, allocator figures, thread caches, index (objects, and
    /// buckets and load factor of a hash index or depth of an ordered one), lock owners.
    Stat {
        /// The segment (a /dev/shm name, a file path or xsi:KEY).
        segment: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a segment in full; exit status 0 when sound, 1 otherwise (for scripts).
    Check {
        /// The segment (a /dev/shm name, a file path or xsi:KEY).
        segment: String,
    },
    /// List the objects of a segment with their values, as far as the segment describes
    /// them: scalars, and structs, enums and arrays of them from the schemas the segment
    /// stores for its types (containers and locks are shown as opaque; `--json` without an
    /// object lists those schemas too).
    Dump {
        /// The segment (a /dev/shm name, a file path or xsi:KEY).
        segment: String,
        /// Only the object of this name (a root by its name alone too).
        object: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw the block layout (one character per cell: `.` free, `#` used, `c` held in a
    /// thread cache, `o` object, `=` the segment's own tables), to look at fragmentation.
    Map {
        /// The segment (a /dev/shm name, a file path or xsi:KEY).
        segment: String,
        /// Cells per line.
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Lines.
        #[arg(long, default_value_t = 16)]
        lines: usize,
        /// Also list every run of blocks of one kind.
        #[arg(long)]
        runs: bool,
    },
    /// Remove segments (shmkit segments only; mappings attached keep their memory, and an
    /// XSI segment lives on until its last detach).
    Rm {
        /// The segments (/dev/shm names, file paths or xsi:KEY).
        #[arg(required = true)]
        segments: Vec<String>,
    },
    /// List segments in /dev/shm and XSI shared memory whose creator and every attached
    /// process are dead (an XSI segment also with no attachment at all); remove them with
    /// --yes.
    Gc {
        /// Remove what is listed.
        #[arg(long)]
        yes: bool,
        /// Only these segments; all of /dev/shm and XSI shared memory without.
        segments: Vec<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Why a command failed, and its exit status.
#[derive(Debug)]
pub struct Failure {
    /// What to print on stderr.
    pub message: String,
    /// The exit status.
    pub code: u8,
}

impl Failure {
    /// The command could not run (exit status 2).
    pub fn usage(message: String) -> Failure {
        Failure { message, code: 2 }
    }

    /// The segment is not sound (exit status 1).
    pub fn segment_text(message: String) -> Failure {
        Failure { message, code: 1 }
    }

    /// A runtime error about the segment's bytes.
    pub fn segment(e: shmkit::Error) -> Failure {
        Failure::segment_text(e.to_string())
    }

    /// A runtime error of the system (exit status 2).
    pub fn runtime(e: shmkit::Error) -> Failure {
        Failure::usage(e.to_string())
    }

    /// An error opening a segment: its bytes' fault, or the circumstances'.
    pub fn from_open(e: shmkit::Error) -> Failure {
        use shmkit::Error::*;
        match e {
            NotASegment { .. }
            | Truncated { .. }
            | IncompatibleVersion { .. }
            | Corrupted { .. }
            | IndexMismatch { .. }
            | AlgorithmMismatch { .. }
            | InvalidValue { .. } => Failure::segment(e),
            e => Failure::runtime(e),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let wait = Duration::try_from_secs_f64(cli.wait).unwrap_or(Duration::from_secs(5));
    let watchdog = wait * 2 + Duration::from_secs(5);
    let _ = target::WAIT.set(wait);
    // A command that still waits for a lock well past `--wait` (a live process took it
    // between our look at the word and our lock call, and keeps it) is given up on: the
    // process exits while its thread waits, holding nothing.
    let json = matches!(
        cli.command,
        Command::Ls { json: true, .. }
            | Command::Stat { json: true, .. }
            | Command::Dump { json: true, .. }
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let result = run(cli.command, &mut out);
        let _ = tx.send((result, out));
    });
    let (result, out) = match rx.recv_timeout(watchdog) {
        Ok(done) => done,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => (
            Err(Failure::usage(format!(
                "gave up after {:.1} s: the segment's locks stay held by a live process, \
                 or its contents take that long to read",
                watchdog.as_secs_f64()
            ))),
            Vec::new(),
        ),
        // The command's thread panicked (its message is printed above): a bug, said as
        // one, never mistaken for a lock held by someone else.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            eprintln!("shmkit: internal error (a bug in shmkit; please report it)");
            return ExitCode::from(101);
        }
    };
    // Text shows names from the segment and from /dev/shm, where anyone may put a file:
    // their control characters are printed escaped, never sent to the terminal. (JSON
    // escapes them itself.)
    let out = if json {
        out
    } else {
        printable(&out).into_bytes()
    };
    let _ = std::io::stdout().write_all(&out);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("shmkit: {}", printable(f.message.as_bytes()));
            ExitCode::from(f.code)
        }
    }
}

/// `text` for a terminal: control characters other than newline and tab (escape
/// sequences that would move the cursor, retitle the window, write the clipboard, …)
/// and the bidirectional formatting characters (which would show a name reversed, or
/// the rest of its line reordered) are shown escaped (`\u{1b}`, `\u{202e}`), invalid
/// UTF-8 replaced.
pub fn printable(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() || is_bidi_format(c) => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The characters that change the direction text is shown in (Unicode's bidirectional
/// marks, embeddings, overrides and isolates).
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The longest `--wait` accepted: a figure the watchdog's arithmetic can double.
const MAX_WAIT_SECONDS: f64 = 1e9;

/// Parses `--wait`: seconds, from 0 to [`MAX_WAIT_SECONDS`].
fn seconds(arg: &str) -> Result<f64, String> {
    let s: f64 = arg.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=MAX_WAIT_SECONDS).contains(&s) {
        return Err(format!("seconds from 0 to {MAX_WAIT_SECONDS:e}"));
    }
    Ok(s)
}

/// Runs one command, writing its output to `out`; the exit status.
fn run(command: Command, out: &mut Vec<u8>) -> Result<u8, Failure> {
    match command {
        Command::Ls { paths, json } => report::ls(&paths, json, out),
        Command::Stat { segment, json } => report::stat(&Target::parse(&segment)?, json, out),
        Command::Check { segment } => report::check(&Target::parse(&segment)?, out),
        Command::Dump {
            segment,
            object,
            json,
        } => report::dump(&Target::parse(&segment)?, object.as_deref(), json, out),
        Command::Map {
            segment,
            width,
            lines,
            runs,
        } => report::map(&Target::parse(&segment)?, width, lines, runs, out),
        Command::Rm { segments } => report::rm(&segments, out),
        Command::Gc { yes, segments } => report::gc(yes, &segments, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shmkit", out);
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_are_names_or_paths() {
        let parse = |s| Target::parse(s).expect("parses");
        assert!(matches!(parse("db"), Target::Shm(n) if n == "db"));
        assert!(matches!(parse("/dev/shm/db"), Target::Shm(n) if n == "db"));
        assert!(matches!(parse("./db"), Target::File(_)));
        assert!(matches!(parse("data/db"), Target::File(_)));
        assert!(matches!(parse("xsi:0x1234abcd"), Target::Xsi(0x1234_abcd)));
        assert!(matches!(parse("xsi:0xffffffff"), Target::Xsi(-1)));
        assert!(matches!(parse("xsi:-2"), Target::Xsi(-2)));
        assert_eq!(parse("xsi:-2").display(), "xsi:0xfffffffe");
        for bad in ["xsi:", "xsi:0", "xsi:0x", "xsi:0x123456789", "xsi:db"] {
            assert_eq!(Target::parse(bad).expect_err(bad).code, 2, "{bad}");
        }
    }
}
