//! Diffusers pipelines: which files a pipeline needs (selection), from where (planning), and how
//! they are assembled into a folder `DiffusionPipeline.from_pretrained` loads.

pub mod select;
