//! Teachers trained elsewhere, as seqkd model directories: [`marian`] reads the Hugging Face
//! `MarianMTModel` layout that OPUS-MT models are published in.

pub mod marian;
