use shmkit::{PositionIndependent, ShmSafe};

#[derive(ShmSafe)]
#[repr(C)]
pub struct Slot<T, const N: usize> {
    used: bool,
    values: [T; N],
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Bounded<T: Copy>
where
    T: Default,
{
    value: T,
}

fn assert_pi<T: PositionIndependent>() {}

fn main() {
    assert_pi::<Slot<u64, 4>>();
    assert_pi::<Slot<Slot<u8, 2>, 3>>();
    assert_pi::<Bounded<i32>>();
    assert_ne!(
        <Slot<u8, 4>>::LAYOUT_FINGERPRINT,
        <Slot<u8, 5>>::LAYOUT_FINGERPRINT
    );
    let s = Slot::<u8, 1> { used: true, values: [1] };
    assert!(s.used && s.values[0] == 1);
    let _ = Bounded { value: 1u8 }.value;
}
