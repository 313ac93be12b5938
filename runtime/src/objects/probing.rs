//! What the two open-addressing tables in a segment (the hash index and the registry of
//! anonymous entries) share: deleting from a linear-probing run.

use crate::error::Result;

/// Empties slot `hole` of a linear-probing table of `len` slots (a power of two), pulling
/// later slots of its run into the hole when their home is not between the hole and them,
/// so that every probe still finds its entry (backward-shift deletion). `get` and `set`
/// take unmasked slot numbers; `home` gives a stored word's home slot.
pub(crate) fn backward_shift_delete(
    len: u64,
    mut hole: u64,
    mut get: impl FnMut(u64) -> Result<u64>,
    mut set: impl FnMut(u64, u64) -> Result<()>,
    mut home: impl FnMut(u64) -> Result<u64>,
) -> Result<()> {
    let mask = len - 1;
    let mut j = hole;
    for _ in 0..len {
        j += 1;
        let w = get(j)?;
        if w == 0 {
            break;
        }
        if j.wrapping_sub(home(w)?) & mask >= j.wrapping_sub(hole) & mask {
            set(hole, w)?;
            hole = j;
        }
    }
    set(hole, 0)
}
