"""Which bench a model was adapted to, and whether the bench it runs on now is that one."""

from __future__ import annotations

from optgen.lab.model.shipped import OpticalModel

__all__ = ["adapted_elsewhere"]


def adapted_elsewhere(model: OpticalModel, calibration_ids: dict[str, str],
                      decoder_corrected: bool | None = None) -> str | None:
    """A warning when ``model`` was refined (``optgen refine``) or fine-tuned (``optgen train --from``)
    on calibrations other than those in force now (``calibration_ids``: the bench's), or with SLM2's
    wavefront correction in force where it is not now or the other way round (``decoder_corrected``:
    the bench's ``correct_decoder_wavefront``; None: not compared), else None."""
    info = model.info or {}
    for how, entry in (("refined", info.get("refined")),
                       ("fine-tuned", (info.get("fine_tuned") or {}).get("measured_optics"))):
        if not isinstance(entry, dict) or not isinstance(entry.get("calibrations"), dict):
            continue
        optics = entry.get("optics") if isinstance(entry.get("optics"), dict) else entry   # refined / fine-tuned
        then_corrected = optics.get("slm2_corrected")
        if decoder_corrected is not None and isinstance(then_corrected, bool) and then_corrected != decoder_corrected:
            now, was = ("corrects", "left it uncorrected") if decoder_corrected else ("leaves uncorrected", "corrected it")
            return (f"model {model.name} was {how} on bench {entry.get('bench', '?')!r} where runs {was}, and this "
                    f"bench {now} SLM2's wavefront ([calibration] correct_decoder_wavefront): its decoder suits "
                    f"the other setting; set it as it was, or refine the model again (optgen refine)")
        then = entry["calibrations"]
        differ = sorted(name for name, cal in then.items() if name != "camera" and calibration_ids.get(name) != cal)
        if differ:
            return (f"model {model.name} was {how} on bench {entry.get('bench', '?')!r} with other calibrations "
                    f"({', '.join(differ)} differ from those in force): its decoder suits that bench; "
                    f"refine it on this one (optgen refine)")
    return None
