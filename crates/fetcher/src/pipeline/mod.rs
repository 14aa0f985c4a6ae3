//! Diffusers pipelines: which files a pipeline needs (selection), from where (planning), fetching
//! them and assembling a folder `DiffusionPipeline.from_pretrained` loads (pull), and telling from
//! disk alone whether a pipeline is here (check).

pub mod assemble;
pub mod check;
pub mod input;
pub mod plan;
pub mod pull;
pub mod select;
