//! An exponential moving average of a network's weights, kept beside the
//! weights the optimizer trains (timm's `ModelEmaV2`, Keras' `use_ema`):
//! validated, and kept as the model, in their place.
use std::path::Path;

use tch::{Kind, Tensor, nn};

use super::config::Ema;
use crate::error::Result;
use crate::modeldir::{load_weights, write_safetensors_atomic};

/// The averaged copy of every variable of a var store (batch-norm
/// statistics included), beside a handle on the variable itself.
pub(crate) struct EmaWeights {
    settings: Ema,
    tracked: Vec<Tracked>,
}

/// One variable: its name, the variable (a handle sharing its storage, so
/// it follows the var store, layout changes included) and its average.
struct Tracked {
    name: String,
    variable: Tensor,
    average: Tensor,
}

impl EmaWeights {
    /// An average that starts at the var store's current weights.
    pub(super) fn new(vs: &nn::VarStore, settings: Ema) -> Self {
        let tracked = tch::no_grad(|| {
            vs.variables()
                .into_iter()
                .map(|(name, variable)| Tracked { average: variable.copy(), name, variable })
                .collect()
        });
        Self { settings, tracked }
    }

    /// The average saved at `path` by [`EmaWeights::save`], checked against
    /// the var store's variables as model weights are; the var store is
    /// left as it was.
    pub(super) fn load(vs: &mut nn::VarStore, path: &Path, settings: Ema) -> Result<Self> {
        let trained = Self::new(vs, settings);
        let loaded = load_weights(vs, path);
        let averaged = Self::new(vs, settings);
        trained.put_back()?;
        loaded.map(|()| averaged)
    }

    /// Write the average as a weights file (the format of `best.safetensors`).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let named: Vec<(String, Tensor)> =
            self.tracked.iter().map(|t| (t.name.clone(), t.average.contiguous())).collect();
        write_safetensors_atomic(&named, path)
    }

    /// Move the average towards the weights after optimizer step `step`
    /// (from 0). The decay is warmed up as timm's is,
    /// `min(decay, (1 + step) / (10 + step))`, so the first steps, far from
    /// where training goes, are soon forgotten.
    pub(super) fn update(&mut self, step: usize) -> Result<()> {
        let decay = self.settings.decay.min((1.0 + step as f64) / (10.0 + step as f64));
        tch::no_grad(|| {
            for t in &mut self.tracked {
                if is_floating(t.average.kind()) {
                    let _same_tensor = t.average.f_lerp_(&t.variable, 1.0 - decay)?;
                } else {
                    t.average.f_copy_(&t.variable)?;
                }
            }
            Ok(())
        })
    }

    /// Swap the average with the weights, variable by variable: the var
    /// store then holds the average and this the trained weights; swapping
    /// again restores both.
    fn swap(&mut self) -> Result<()> {
        tch::no_grad(|| {
            for t in &mut self.tracked {
                let trained = t.variable.f_detach_copy()?;
                t.variable.f_copy_(&t.average)?;
                t.average.f_copy_(&trained)?;
            }
            Ok(())
        })
    }

    /// Write the copies this holds back into the variables.
    fn put_back(mut self) -> Result<()> {
        tch::no_grad(|| {
            for t in &mut self.tracked {
                t.variable.f_copy_(&t.average)?;
            }
            Ok(())
        })
    }

    /// Run `f` while the var store holds the average in place of the
    /// trained weights (to validate or save it), then put them back.
    pub(super) fn in_place_of_weights<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.swap()?;
        let out = f();
        self.swap()?;
        out
    }
}

fn is_floating(kind: Kind) -> bool {
    matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(value: f32) -> nn::VarStore {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _w = vs.root().var("w", &[2], nn::Init::Const(f64::from(value)));
        vs
    }

    fn set(vs: &nn::VarStore, to: f64) {
        let _same_tensor = tch::no_grad(|| vs.variables()["w"].shallow_clone().fill_(to));
    }

    fn average(ema: &EmaWeights) -> Vec<f32> {
        Vec::<f32>::try_from(&ema.tracked[0].average).unwrap()
    }

    fn value(vs: &nn::VarStore) -> Vec<f32> {
        Vec::<f32>::try_from(&vs.variables()["w"]).unwrap()
    }

    #[test]
    fn the_average_follows_the_weights_at_the_warmed_up_decay() {
        let vs = store(0.0);
        let mut ema = EmaWeights::new(&vs, Ema { decay: 0.9 });
        set(&vs, 1.0);
        // Step 0: decay min(0.9, 1/10) = 0.1, so the average moves 90 % of the way.
        ema.update(0).unwrap();
        let after_step_0 = average(&ema);
        assert!((after_step_0[0] - 0.9).abs() < 1e-6, "{after_step_0:?}");
        // Step 1000: the decay is the configured 0.9.
        set(&vs, 2.0);
        ema.update(1000).unwrap();
        let after = average(&ema);
        assert!((after[0] - (0.9 * 0.9 + 0.1 * 2.0)).abs() < 1e-6, "{after:?}");
        assert_eq!(value(&vs), [2.0, 2.0], "the trained weights are untouched");
    }

    #[test]
    fn the_average_stands_in_for_the_weights_only_inside_and_a_saved_one_loads_back() {
        let vs = store(3.0);
        let mut ema = EmaWeights::new(&vs, Ema { decay: 0.9 });
        set(&vs, 5.0);
        let inside = ema.in_place_of_weights(|| Ok(value(&vs))).unwrap();
        assert_eq!(inside, [3.0, 3.0]);
        assert_eq!(value(&vs), [5.0, 5.0]);
        let failed =
            ema.in_place_of_weights(|| Err::<(), _>(crate::Error::InvalidConfig { reason: "failed".into() }));
        assert!(failed.is_err());
        assert_eq!(value(&vs), [5.0, 5.0], "put back after a failure too");
        assert_eq!(average(&ema), [3.0, 3.0]);

        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("ema.safetensors");
        ema.save(&file).unwrap();
        let mut vs = vs;
        let loaded = EmaWeights::load(&mut vs, &file, Ema { decay: 0.9 }).unwrap();
        assert_eq!(average(&loaded), [3.0, 3.0]);
        assert_eq!(value(&vs), [5.0, 5.0], "loading leaves the trained weights in place");
        let missing = EmaWeights::load(&mut vs, &tmp.path().join("none.safetensors"), Ema { decay: 0.9 })
            .err()
            .unwrap();
        assert!(missing.to_string().contains("none.safetensors"), "{missing}");
    }
}
