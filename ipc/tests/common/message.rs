//! The messages of the multi-process tests: a sequence number, then bytes that depend on
//! it and a length that does too, so that a torn or mixed-up message shows.

/// Writes message `seq` to `buf`; its length.
pub fn fill(buf: &mut [u8], seq: u64) -> usize {
    let len = 8 + (seq as usize * 7) % (buf.len() - 7);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[8..len].iter_mut().enumerate() {
        *b = byte(seq, i);
    }
    len
}

/// The priority of message `seq`.
pub fn priority(seq: u64) -> u32 {
    (seq % 4) as u32
}

/// The sequence number of a message that is whole (length, bytes, priority), or what is
/// wrong with it.
pub fn check(msg: &[u8], prio: u32) -> Result<u64, String> {
    let seq = u64::from_le_bytes(
        msg.get(..8)
            .ok_or("shorter than 8 bytes")?
            .try_into()
            .unwrap(),
    );
    let mut want = vec![0u8; 64];
    let len = fill(&mut want, seq);
    if msg.len() != len || msg != &want[..len] || prio != priority(seq) {
        return Err(format!(
            "message {seq} torn: {} bytes, priority {prio}",
            msg.len()
        ));
    }
    Ok(seq)
}

fn byte(seq: u64, i: usize) -> u8 {
    (seq.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8
}
