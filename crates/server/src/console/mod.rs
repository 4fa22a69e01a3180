//! The console: what people and operators watch beside the operations API (contract
//! section 13): the change feed and its server-sent event stream (`watch`), the store
//! wrapper that feeds it (`feed`), bulk cancel (`batch`).

pub(crate) mod batch;
pub(crate) mod feed;
pub(crate) mod watch;

use std::sync::Arc;

/// What the console's routes share; cheap to clone.
#[derive(Clone)]
pub struct Console {
    /// Every change this server learns of, in order, for the watch stream.
    pub hub: Arc<watch::Hub>,
}

impl Console {
    pub fn new() -> Console {
        Console {
            hub: Arc::new(watch::Hub::new()),
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}
