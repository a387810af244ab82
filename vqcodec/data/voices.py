"""What is known about a training voice from its name: language, source and sex.

A checkpoint stores only the speaker names; the corpus builders name voices by rule
(`vqcodec.data.real`: `ast_fr`, `tux_<locale>`, `klettres_<locale>`, `ktub_<lang>`,
`fillets_<lang>_<role>`, `gcin_3`, `hw_<pack>`; `vqcodec.data.synth`: mbrola and espeak-ng voices
and their variants), so the name says where a voice came from. Sex is given only where the source
states it (the asterisk voice folders, e.g. `fr_CA_f_June`; festvox's msu_ru_nsh; the mbrola and
espeak-ng voice documentation); elsewhere it is unknown, never guessed from the sound. Pure Python
with no imports beyond the standard library: `vqcodec speakers` stays well under a second.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LANGUAGES = {
    "ar": "Arabic", "be": "Belarusian", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "fr": "French", "ga": "Irish",
    "gl": "Galician", "he": "Hebrew", "hu": "Hungarian", "it": "Italian", "lt": "Lithuanian",
    "ml": "Malayalam", "nb": "Norwegian Bokmål", "nds": "Low German", "nl": "Dutch",
    "nn": "Norwegian Nynorsk", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sl": "Slovenian", "sr": "Serbian", "tn": "Tswana", "uk": "Ukrainian", "wa": "Walloon",
    "zh": "Chinese (Mandarin)",
}

# synthetic voices (vqcodec.data.synth.SPEAKERS): base voice -> (language, engine voice, sex)
_SYNTH = {"us1": ("en-US", "mbrola us1", "female"), "us2": ("en-US", "mbrola us2", "male"),
          "us3": ("en-US", "mbrola us3", "male"), "en1": ("en-GB", "mbrola en1", "male"),
          "esp_m3": ("en-US", "espeak-ng en-us+m3", "male"), "esp_f2": ("en-US", "espeak-ng en-us+f2", "female"),
          "esp_gb_m7": ("en-GB", "espeak-ng en+m7", "male")}
# asterisk-core-sounds-LANG-g722: one voice each, named by its folder (LANG_REGION_SEX_NAME)
_ASTERISK = {"fr": ("fr-CA", "fr_CA_f_June", "female"), "it": ("it", "it_IT_m_Carlo", "male"),
             "ru": ("ru", "ru_RU_f_IvrvoiceRU", "female"), "en": ("en-US", "en_US_f_Allison", "female")}
# hedgewars voice packs: the language each speaks, where its name says it
_HEDGEWARS = {"british": "en-GB", "classic": "en", "default": "en", "hillbilly": "en", "mobster": "en",
              "pirate": "en", "robot": "en", "singer": "en", "surfer": "en"}


@dataclass(frozen=True)
class Voice:
    name: str
    language: str | None  # a BCP 47 tag ("en", "en-GB", "pt-BR"); None: not known
    source: str           # the Debian package, or the synthesizer voice; "" when not known
    sex: str | None = None  # "female" / "male" where the source says so

    @property
    def english(self) -> bool:
        return self.language is not None and self.language.split("-")[0] == "en"

    @property
    def language_name(self) -> str:
        if self.language is None:
            return "-"
        base, _, region = self.language.partition("-")
        return LANGUAGES.get(base, base) + (f" ({region})" if region else "")


def _tag(locale: str) -> str:
    """`pt_br` / `en_gb` / `sr@latin` -> `pt-BR` / `en-GB` / `sr`."""
    lang, _, region = locale.split("@")[0].partition("_")
    return lang.lower() + (f"-{region.upper()}" if region else "")


def describe(name: str) -> Voice:
    """The Voice of a training speaker name (language and source None / "" when the name follows
    none of the corpus builders' rules, e.g. a VCTK or LibriSpeech id)."""
    m = re.fullmatch(r"(us1|us2|us3|en1|esp_m3|esp_f2|esp_gb_m7)(?:_(high|low))?", name)
    if m:
        lang, voice, sex = _SYNTH[m.group(1)]
        variant = f", {m.group(2)} pitch / vocal-tract variant" if m.group(2) else ""
        return Voice(name, lang, f"synthetic ({voice}{variant})", sex)
    m = re.fullmatch(r"ast_(\w+)", name)
    if m and m.group(1) in _ASTERISK:
        lang, folder, sex = _ASTERISK[m.group(1)]
        return Voice(name, lang, f"asterisk-core-sounds-{m.group(1)}-g722 ({folder})", sex)
    if name == "festvox_ru":
        return Voice(name, "ru", "festvox-ru (msu_ru_nsh)", "male")
    m = re.fullmatch(r"(tux|klettres|ktub)_(\w+)", name)
    if m:
        package = {"tux": "tuxpaint-stamps-default", "klettres": "klettres-data", "ktub": "ktuberling-data"}
        return Voice(name, _tag(m.group(2)), package[m.group(1)])
    m = re.fullmatch(r"fillets_(cs|nl)_\w+", name)
    if m:
        return Voice(name, m.group(1), f"fillets-ng-data-{m.group(1)}")
    if re.fullmatch(r"gcin_\d+", name):
        return Voice(name, "zh", "gcin-voice")
    m = re.fullmatch(r"hw_(\w+)", name)
    if m:
        pack = m.group(1)
        lang = _HEDGEWARS.get(pack) or (_tag(pack.split("_", 1)[1]) if pack.startswith("default_") else None)
        return Voice(name, lang, "hedgewars-data")
    return Voice(name, None, "")


__all__ = ["Voice", "describe", "LANGUAGES"]
