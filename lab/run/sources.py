"""What a run shows, as the bench file's [run] table says: the seed source (the model's encoder, a
file of seeds, or the placeholder encoder), the decoder phase, and the model they come from."""

from __future__ import annotations

from pathlib import Path

from optgen.drivers.errors import OptgenError

__all__ = ["RunSources", "bench_model", "run_sources"]


def bench_model(cfg, base_dir: Path | None):
    """The model the bench file's [run] model names (a path relative to the bench file's folder, or shipped)."""
    from optgen.lab.model import load_model

    spec = cfg.run.model
    if base_dir is not None and not Path(spec).is_absolute() and (base_dir / spec).exists():
        spec = str(base_dir / spec)
    return load_model(spec)


class RunSources:
    """What a bench file's [run] table shows, loaded and checked before any device opens: the model
    (checked against the bench's geometry and colour), the decoder phase, the seed file."""

    def __init__(self, cfg, base_dir: Path | None = None):
        from optgen.lab.run.decoder import load_decoder_phase
        from optgen.lab.run.seeds import FileSeedSource

        self.cfg, self.base_dir = cfg, base_dir
        g = cfg.geometry
        self.model = None
        if cfg.run.seed_source == "model" or cfg.run.decoder_phase == "model":
            from optgen.lab.model import OpticalGeometry

            self.model = bench_model(cfg, base_dir)
            self.model.check_bench(OpticalGeometry.from_bench(cfg), wavelength_nm=cfg.wavelength_nm)
        self._file_seeds = None
        if cfg.run.seed_source == "file":
            seed_path = Path(cfg.run.seed_file)
            self._file_seeds = FileSeedSource(seed_path if seed_path.is_absolute() or base_dir is None
                                              else base_dir / seed_path, g.seed_superpixels)
        if cfg.run.decoder_phase == "model":
            model = self.model
            self.decoder_phase = model.decoder_phase[model.wavelengths_nm[model.colour_index(cfg.wavelength_nm)]]
            self.decoder_id = f"model:{model.id}"
        else:
            self.decoder_phase, self.decoder_id = load_decoder_phase(cfg.run.decoder_phase, g.decoder_px, base_dir)

    def seeds(self, random_seed: int, class_index: int | None = None):
        """The seed source for ``random_seed`` (a seed file ignores it); ``class_index``: seeds of
        that class only (a model trained on labelled images)."""
        from optgen.lab.run.seeds import EncoderSeedSource, PlaceholderEncoder

        model_seeds = self.model is not None and self.cfg.run.seed_source == "model" and self._file_seeds is None
        if class_index is not None and not model_seeds:
            raise OptgenError(f"class {class_index}: only a model's encoder generates a class on request; this bench "
                              f"file's [run] shows {'a seed file' if self._file_seeds is not None else 'no model'}")
        if self._file_seeds is not None:
            return self._file_seeds
        if model_seeds:
            from optgen.lab.run.model_seeds import ModelSeedSource

            return ModelSeedSource(self.model, self.cfg.wavelength_nm, random_seed, class_index)
        n = self.cfg.geometry.seed_superpixels
        return EncoderSeedSource(PlaceholderEncoder(n * n), n, random_seed)


def run_sources(cfg, base_dir: Path | None, random_seed: int):
    """(seed source, decoder phase, decoder id) for a run of ``cfg`` with ``random_seed``."""
    sources = RunSources(cfg, base_dir)
    return sources.seeds(random_seed), sources.decoder_phase, sources.decoder_id
