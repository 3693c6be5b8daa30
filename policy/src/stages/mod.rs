//! The stage registry: adding a stage is one file in this folder and one line below.

pub mod respond;

crate::stages! {
    respond::Respond,
}
