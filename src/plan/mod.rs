//! The planning layer: what a run of a store will do, decided by pure
//! functions over what the run read (a listing, the store's state, its
//! policy, the time). Nothing here does I/O.

pub mod retention;
