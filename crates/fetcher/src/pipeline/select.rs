//! Which files of a diffusers repo a pipeline needs. (Being written.)
