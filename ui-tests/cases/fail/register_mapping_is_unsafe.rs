// Registering an address range makes offset pointers trust it: safe code must not.
fn main() {
    let mut bytes = [0u8; 64];
    let _reg = shmkit::test_hooks::registry::register(bytes.as_mut_ptr(), 64, true);
}
