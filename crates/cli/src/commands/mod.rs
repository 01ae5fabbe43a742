//! One module per client command.

pub mod api;
pub mod bill;
pub mod deploy;
pub mod image;
pub mod invoke;
pub mod layer;
pub mod logs;
pub mod ls;
pub mod publish;
pub mod rm;
pub mod show;
pub mod top;
pub mod topic;
pub mod url;
