"""What a run shows, as the bench file's [run] table says: the seed source (the model's encoder, a
file of seeds, or the placeholder encoder), the decoder phase, and the model they come from."""

from __future__ import annotations

from pathlib import Path

__all__ = ["bench_model", "run_sources"]


def bench_model(cfg, base_dir: Path | None):
    """The model the bench file's [run] model names (a path relative to the bench file's folder, or shipped)."""
    from optgen.lab.model import load_model

    spec = cfg.run.model
    if base_dir is not None and not Path(spec).is_absolute() and (base_dir / spec).exists():
        spec = str(base_dir / spec)
    return load_model(spec)


def run_sources(cfg, base_dir: Path | None, random_seed: int):
    """The run's seed source and decoder phase, as the bench file's [run] table says."""
    from optgen.lab.run.decoder import load_decoder_phase
    from optgen.lab.run.seeds import EncoderSeedSource, FileSeedSource, PlaceholderEncoder

    g = cfg.geometry
    model = None
    if cfg.run.seed_source == "model" or cfg.run.decoder_phase == "model":
        from optgen.lab.model import ModelSeedSource, OpticalGeometry

        model = bench_model(cfg, base_dir)
        model.check_bench(OpticalGeometry.from_bench(cfg), wavelength_nm=cfg.wavelength_nm)
    if cfg.run.seed_source == "model":
        seeds = ModelSeedSource(model, cfg.wavelength_nm, random_seed)
    elif cfg.run.seed_source == "file":
        seed_path = Path(cfg.run.seed_file)
        seeds = FileSeedSource(seed_path if seed_path.is_absolute() or base_dir is None else base_dir / seed_path,
                               g.seed_superpixels)
    else:
        seeds = EncoderSeedSource(PlaceholderEncoder(g.seed_superpixels**2), g.seed_superpixels, random_seed)
    if cfg.run.decoder_phase == "model":
        decoder_phase = model.decoder_phase[model.wavelengths_nm[model.colour_index(cfg.wavelength_nm)]]
        decoder_id = f"model:{model.id}"
    else:
        decoder_phase, decoder_id = load_decoder_phase(cfg.run.decoder_phase, g.decoder_px, base_dir)
    return seeds, decoder_phase, decoder_id
