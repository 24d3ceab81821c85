//! The engine's error type: every message names what is wrong (which tensor, which field, which file).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("config: {0}")]
    Config(String),
    #[error("checkpoint: missing tensor {name} (looked for {looked_for})")]
    MissingTensor { name: String, looked_for: String },
    #[error("checkpoint: tensor {name} has shape {actual:?}, expected {expected:?}")]
    WrongShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("checkpoint: tensor {name} has dtype {dtype}, supported: BF16, F16, F32")]
    UnsupportedDtype { name: String, dtype: String },
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("input: {0}")]
    Input(String),
    #[error("gpu: {0}")]
    Gpu(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
