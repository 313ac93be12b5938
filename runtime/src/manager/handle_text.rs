//! [`Handle`] as text, to pass it to another process on a command line or through a pipe:
//! `Display` writes the offset in decimal and `FromStr` reads it back.
//!
//! ```
//! use shmkit_runtime::Handle;
//! let handle = Handle(4096);
//! let text = handle.to_string();
//! assert_eq!(text, "4096");
//! assert_eq!(text.parse::<Handle>(), Ok(handle));
//! assert!("0x1000".parse::<Handle>().unwrap_err().to_string().contains("decimal"));
//! ```

use std::fmt;
use std::str::FromStr;

use super::Handle;

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Text that is not a [`Handle`]: what `"…".parse::<Handle>()` returns on bad input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseHandleError {
    input: String,
}

impl fmt::Display for ParseHandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a segment handle: a handle is written as its offset in decimal digits, e.g. \"4096\"",
            self.input
        )
    }
}

impl std::error::Error for ParseHandleError {}

impl FromStr for Handle {
    type Err = ParseHandleError;

    /// Reads what `Display` wrote: decimal digits only (no sign, no spaces, no `0x`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match s.parse() {
            Ok(offset) if digits_only => Ok(Handle(offset)),
            _ => Err(ParseHandleError {
                input: s.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_through_text() {
        for offset in [0, 16, 4096, u64::MAX] {
            let text = Handle(offset).to_string();
            assert_eq!(text.parse::<Handle>(), Ok(Handle(offset)), "{text}");
        }
    }

    #[test]
    fn text_that_is_not_a_handle_says_what_a_handle_looks_like() {
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1\n",
            "0x10",
            "4k",
            "18446744073709551616",
        ] {
            let err = bad.parse::<Handle>().unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(&format!("{bad:?}")) && message.contains("decimal"),
                "{message}"
            );
        }
    }
}
