//! Opens the engine's slot session for serving: the model is loaded on the calling (engine) thread, bound to
//! the backend with the recipe's kernel settings, and its session of `max_batch` slots of `max_context`
//! positions handed to `run` for as long as it runs.

use super::recipe::KernelSection;
use super::scheduler::Limits;
use crate::error::Result;
use crate::session::{Session, SessionSettings};
use crate::vkae::{ProjectionMode, VkaeModel, VkaeOptions};
use crate::{Backend, Engine, ModelSource};

/// The VKAE path's options from a recipe's `[kernels]`; the rest (the `ablations` feature's field) stays at
/// its default, hence assignments rather than a literal.
#[allow(clippy::field_reassign_with_default)]
pub fn vkae_options(k: &KernelSection) -> Result<VkaeOptions> {
    let mut o = VkaeOptions::default();
    o.graphs = k.cuda_graphs;
    o.projections = ProjectionMode::parse(&k.projections)?;
    o.programmatic_launch = k.programmatic_launch;
    Ok(o)
}

pub fn with_session(
    source: &ModelSource,
    device: Backend,
    kernels: &KernelSection,
    limits: Limits,
    run: impl FnOnce(&mut Session<'_>),
) -> Result<()> {
    let model = source.load()?;
    let mut engine = match device {
        Backend::Vkae => Engine::Vkae(Box::new(VkaeModel::new(&model, vkae_options(kernels)?)?)),
        other => Engine::new(model, other)?,
    };
    let settings = SessionSettings::new(
        engine.config(),
        limits.max_batch,
        limits.capacity,
        limits.prefill_chunk,
    )?;
    let mut session = engine.session(settings)?;
    run(&mut session);
    Ok(())
}
