//! The fold spec of a store: the store's `key`, `op` and `delete` as the
//! fold engine reads them. Here, not in `fold/`, so that the fold does not
//! know the config (imports point down: fold ← config).

use crate::config::StoreConfig;
use crate::fold::FoldSpec;

impl FoldSpec {
    /// The spec of a store. A loaded or built [`StoreConfig`] is already
    /// validated; one assembled field by field may not be, and gets an
    /// error rather than a panic.
    pub fn for_store(store: &StoreConfig) -> crate::Result<Self> {
        FoldSpec::new(&store.key, store.op.as_deref(), &store.delete).map_err(|msg| {
            crate::Error::Config(crate::error::ConfigError::InvalidStore {
                store: store.name.clone(),
                msg,
            })
        })
    }
}
