//! The tests' fixed-seed randomness, in the lowest layer so that unit tests
//! of every module can use it; integration tests reach it as
//! [`crate::testing::XorShift`]. Nothing in a run is random.

/// A xorshift64 generator (Marsaglia's 13/7/17): small, fast, and the same
/// sequence for the same seed on every machine. Not for anything but tests.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed`; 0 (where xorshift would stay) is replaced
    /// by a fixed odd constant.
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next value below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
