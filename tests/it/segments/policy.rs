//! policy tests
