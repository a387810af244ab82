"""vqcodec: the VQ-VAE speech codec of van den Oord et al. (2017), built to be used.

    import vqcodec
    codec = vqcodec.load_model("default")      # the shipped model, or a checkpoint path
    tokens = codec.encode(wav, sample_rate)     # 250 tokens/s, 9 bits each
    wav = codec.decode(tokens, speaker="us1")
"""
from .errors import AudioError, ConfigError, FormatError, MissingToolError, VqcodecError

__version__ = "0.1.0"

__all__ = ["load_model", "VqcodecError", "AudioError", "ConfigError", "FormatError",
           "MissingToolError", "__version__"]


def load_model(name_or_path="default", device="cpu"):
    """Load a trained codec by shipped name ("default") or checkpoint path."""
    from .api import load_model as _load

    return _load(name_or_path, device=device)
