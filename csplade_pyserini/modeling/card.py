"""The encoder card: everything needed to rebuild an encoder and encode exactly as it was trained.

A card is ``card.json`` in an encoder directory (``encoders/<name>/`` or any path). Encoders read it; command
line flags only override it. Unknown keys and bad values are errors, so a typo never silently changes outputs.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

VARIANTS = ("causal", "echo", "bi")
DTYPES = ("bfloat16", "float16", "float32")
LOGIT_NORMS = ("none", "log_softmax")
TERM_BIAS_KEY = "term_bias"
QUERY_ENCODERS = ("model", "lexical")
QUERY_WEIGHTS_KEY = "query_weights"
QUERY_DF_KEY = "query_df"
CARD_FILE = "card.json"
# passage_side() settings that change how much of a passage is read, how many of its terms are kept, their int scale
# or the arithmetic's precision, but not what a term weighs: an index stays searchable by queries of either setting
READING_KEYS = ("passage_max_length", "passage_windows", "quantization_scale", "passage_top_k", "dtype")


class CardError(ValueError):
    pass


INT_KEYS = ("query_max_length", "passage_max_length", "passage_windows", "query_top_k", "passage_top_k")
FLOAT_KEYS = ("quantization_scale", "logit_shift", "input_bonus", "tf_bonus", "query_expansion")


@dataclass
class EncoderCard:
    name: str
    base_model: str = "smollm2-135m-instruct"  # embedded alias, or a local Hugging Face checkpoint directory
    variant: str = "causal"  # causal | echo (text fed twice, second copy pooled) | bi (causal mask removed)
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    query_max_length: int = 32
    passage_max_length: int = 256
    # a passage longer than passage_max_length: encode up to this many consecutive windows of that length and
    # max-pool them into one vector (term counts summed over the windows); 1 = cut the passage (the default)
    passage_windows: int = 1
    quantization_scale: float = 100.0  # index int = round(weight * scale); ints that round to 0 are dropped
    query_top_k: int = 1024  # Lucene impact queries take at most 1024 clauses
    passage_top_k: int = 256  # 0 = keep every non-zero term
    logit_shift: float = 0.0  # w = log1p(relu(max score + term_bias - logit_shift)); see modeling/head.SparsePooling
    logit_norm: str = "none"  # pooled score: "none" = raw LM-head logits (the paper), "log_softmax" = log-probabilities
    input_bonus: float = 0.0  # added to the activation of the text's own tokens (modeling/head.SparsePooling)
    tf_bonus: float = 0.0  # + tf_bonus * log(count) for the text's own tokens (term frequency; modeling/head)
    term_bias: str | None = None  # safetensors file (key "term_bias", [vocab]) relative to the card's dir, or None
    lowercase: bool = False  # lowercase query and passage texts before tokenizing (e.g. for all-caps topics)
    # how queries are encoded: "model" (the LM, as passages) or "lexical" (no model call: the query's own tokens
    # weighted by a per-term table, see modeling/lexical.py); passages always go through the model
    query_encoder: str = "model"
    # lexical queries' per-term table: safetensors file (key "query_weights", [vocab]) relative to the card's dir;
    # None = derived from the head (term_bias + input_bonus - logit_shift: a token the model is sure of)
    query_weights: str | None = None
    # lexical queries: + an offset by the token's document frequency in the index searched, an IDF-like curve
    # fitted by ``fit_query_weights --mode df`` (modeling/lexical.df_offset): {"values": K numbers at evenly spaced
    # x = log(1 + df) / log(1 + documents) from 0 to 1, "reference_df": safetensors file (key "query_df", [vocab])
    # of the corpus it was fitted on, used where no index is given, "reference_documents": that corpus's size}
    query_df_curve: dict | None = None
    # lexical queries: > 0 adds the model's expansion terms (the model-encoded query's terms the query does not
    # have), their model weights times this share x |lexical|_1 / |model|_1 (modeling/lexical.expand); this runs
    # the model per query again. 0 = none (inference-free). Model-encoded queries ignore it
    query_expansion: float = 0.0
    # model-encoded queries: also pool the position whose logits predict the query's first token (the prefix's last;
    # CspladeModel.features pool_lead), which the text's own positions miss; passages are unaffected
    query_pool_lead: bool = False
    # the fusion with BM25 that `search --bm25-index` uses when not told otherwise: {"method": "interpolation",
    # "weights": [CSPLADE, BM25]} or {"method": "rrf", "rrf_k": k}, plus "chosen_on": where it was tuned (e.g. the
    # eval/fusion grid JSON); None = rrf, k 60. A search-time setting: it changes no vector
    hybrid: dict | None = None
    adapter: str | list | None = None  # peft adapter dir(s), relative to the card's dir, merged in order
    base_sha256: str | None = None  # checksum of the base weights the adapter was trained on
    dtype: str = "bfloat16"
    description: str = ""
    training: dict | None = None
    scores: dict = field(default_factory=dict)
    path: str | None = field(default=None, compare=False)  # where the card was read from (not saved)

    def __post_init__(self):
        self.validate()

    def validate(self):
        where = f"encoder card {self.path or self.name!r}"
        if self.variant not in VARIANTS:
            raise CardError(f"{where}: variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.logit_norm not in LOGIT_NORMS:
            raise CardError(f"{where}: logit_norm must be one of {LOGIT_NORMS}, got {self.logit_norm!r}")
        if self.query_encoder not in QUERY_ENCODERS:
            raise CardError(f"{where}: query_encoder must be one of {QUERY_ENCODERS}, got {self.query_encoder!r}")
        if self.dtype not in DTYPES:
            raise CardError(f"{where}: dtype must be one of {DTYPES}, got {self.dtype!r}")
        self._coerce_numbers(where)
        for key in ("query_max_length", "passage_max_length", "passage_windows"):
            if int(getattr(self, key)) < 1:
                raise CardError(f"{where}: {key} must be >= 1")
        for key in ("query_top_k", "passage_top_k"):
            if int(getattr(self, key)) < 0:
                raise CardError(f"{where}: {key} must be >= 0 (0 keeps every term)")
        if not 0 < self.query_top_k <= 1024:
            raise CardError(f"{where}: query_top_k must be in 1..1024 (Lucene's clause limit)")
        if not float(self.quantization_scale) > 0:
            raise CardError(f"{where}: quantization_scale must be > 0")
        for key in ("logit_shift", "input_bonus", "tf_bonus"):
            if not math.isfinite(getattr(self, key)):
                raise CardError(f"{where}: {key} must be a finite number, got {getattr(self, key)!r}")
        if self.query_df_curve is not None:
            self._validate_df_curve(where)
        if not (math.isfinite(self.query_expansion) and self.query_expansion >= 0):
            raise CardError(f"{where}: query_expansion must be a finite number >= 0 (0 = no expansion terms), "
                            f"got {self.query_expansion!r}")
        if not isinstance(self.query_pool_lead, bool):
            raise CardError(f"{where}: query_pool_lead must be true or false, got {self.query_pool_lead!r}")
        if self.hybrid is not None:
            self._validate_hybrid(where)

    def _validate_hybrid(self, where: str):
        h = self.hybrid
        if not isinstance(h, dict) or set(h) - {"method", "weights", "rrf_k", "chosen_on"}:
            raise CardError(f"{where}: hybrid must be a mapping with 'method' and 'weights' (interpolation) or "
                            f"'rrf_k' (rrf), and optionally 'chosen_on', got {h!r}")
        number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)  # noqa: E731
        if h.get("method") == "interpolation":
            w = h.get("weights")
            if (not isinstance(w, list) or len(w) != 2 or not all(number(x) and x >= 0 for x in w) or not any(w)
                    or "rrf_k" in h):
                raise CardError(f"{where}: hybrid interpolation needs 'weights': [CSPLADE, BM25], two numbers >= 0, "
                                f"not both 0 (and no rrf_k), got {h!r}")
        elif h.get("method") == "rrf":
            if "weights" in h or not (number(h.get("rrf_k", 60)) and h.get("rrf_k", 60) >= 0):
                raise CardError(f"{where}: hybrid rrf takes an 'rrf_k' >= 0 and no weights, got {h!r}")
        else:
            raise CardError(f"{where}: hybrid method must be 'interpolation' or 'rrf', got {h.get('method')!r}")

    def queries_need_model(self) -> bool:
        """Whether encoding a query runs the LM (model-encoded queries, or lexical ones with model expansions)."""
        return self.query_encoder != "lexical" or bool(self.query_expansion)

    def fusion(self) -> dict:
        """The fusion `search --bm25-index` uses by default: {"method", "weights" (or None), "rrf_k"}."""
        from ..fuse import RRF_K

        h = self.hybrid or {"method": "rrf"}
        return {"method": h["method"], "weights": h.get("weights"), "rrf_k": float(h.get("rrf_k", RRF_K))}

    def _validate_df_curve(self, where: str):
        c = self.query_df_curve
        allowed = {"values", "reference_df", "reference_documents"}
        if not isinstance(c, dict) or set(c) - allowed or "values" not in c:
            raise CardError(f"{where}: query_df_curve must be a mapping with 'values' (and optionally "
                            f"'reference_df', 'reference_documents'), got {c!r}")
        v = c["values"]
        if (not isinstance(v, list) or len(v) < 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
            raise CardError(f"{where}: query_df_curve values must be a list of at least 2 finite numbers, got {v!r}")
        if ("reference_df" in c) != ("reference_documents" in c):
            raise CardError(f"{where}: query_df_curve needs both 'reference_df' and 'reference_documents', or neither")
        n = c.get("reference_documents")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise CardError(f"{where}: query_df_curve reference_documents must be a positive integer, got {n!r}")

    def _coerce_numbers(self, where: str):
        """Integer and float settings as their types: a hand-edited card.json may hold "256" or 256.0, which are
        taken as 256; a value that is not a number of that kind (e.g. "abc", 12.5 for an int, true) is a
        CardError naming the key, never a bare ValueError from deep inside encoding."""
        for key in INT_KEYS:
            value = getattr(self, key)
            try:
                if isinstance(value, bool):
                    raise ValueError
                number = float(value) if isinstance(value, str) else value
                if not isinstance(number, (int, float)) or not float(number).is_integer():
                    raise ValueError
            except (TypeError, ValueError):
                raise CardError(f"{where}: {key} must be an integer, got {value!r}") from None
            setattr(self, key, int(number))
        for key in FLOAT_KEYS:
            value = getattr(self, key)
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise ValueError
                number = float(value)
            except ValueError:
                raise CardError(f"{where}: {key} must be a number, got {value!r}") from None
            setattr(self, key, number)

    @property
    def directory(self) -> Path | None:
        return Path(self.path).parent if self.path else None

    def base_ref(self) -> str:
        """base_model, resolved against the card's directory when it names a checkpoint there (full fine-tunes)."""
        if self.directory is not None and (self.directory / self.base_model / "config.json").exists():
            return str(self.directory / self.base_model)
        return self.base_model

    def adapter_paths(self) -> list[Path]:
        """Adapters to merge into the base, in order (e.g. the adaptation stage, then the contrastive stage)."""
        names = [self.adapter] if isinstance(self.adapter, str) else list(self.adapter or [])
        return [p if (p := Path(n)).is_absolute() or self.directory is None else self.directory / p for n in names]

    def _card_file(self, name: str | None) -> Path | None:
        if not name:
            return None
        p = Path(name)
        return p if p.is_absolute() or self.directory is None else self.directory / p

    def term_bias_path(self) -> Path | None:
        return self._card_file(self.term_bias)

    def query_weights_path(self) -> Path | None:
        return self._card_file(self.query_weights)

    def _load_vector(self, path: Path | None, key: str, what: str):
        if path is None:
            return None
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (FileNotFoundError, SafetensorError, OSError) as e:
            raise CardError(f"encoder card {self.path or self.name!r}: cannot read {what} {path}: {e}") from None
        t = tensors.get(key)
        if t is None or t.dim() != 1:
            raise CardError(f"encoder card {self.path or self.name!r}: {path} must hold a 1-d tensor "
                            f"{key!r}, found {sorted(tensors)}")
        t = t.float()
        if not bool(t.isfinite().all()):
            raise CardError(f"encoder card {self.path or self.name!r}: {path} ({key}) holds non-finite values")
        return t

    def load_term_bias(self):
        """The per-term bias as a float32 tensor [vocab], or None; a missing or malformed file is a CardError."""
        return self._load_vector(self.term_bias_path(), TERM_BIAS_KEY, "term_bias")

    def load_query_weights(self):
        """The lexical query side's per-term table as a float32 tensor [vocab], or None (then it is derived from the
        head: modeling/lexical.derived_query_weights); a missing or malformed file is a CardError."""
        return self._load_vector(self.query_weights_path(), QUERY_WEIGHTS_KEY, "query_weights")

    def query_df_path(self) -> Path | None:
        return self._card_file((self.query_df_curve or {}).get("reference_df"))

    def load_query_df(self):
        """The reference corpus's document frequency per token [vocab] (float32), or None."""
        return self._load_vector(self.query_df_path(), QUERY_DF_KEY, "query_df_curve reference_df")

    def passage_side(self) -> dict:
        """The settings a passage's vector depends on: two cards with equal passage sides write the same index
        (e.g. a card that changes only how queries are encoded can search the other's index)."""
        import hashlib

        def digest(path: Path | None):
            return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None

        keys = ("base_model", "variant", "passage_prefix", "passage_max_length", "passage_windows",
                "quantization_scale", "passage_top_k", "logit_shift", "logit_norm", "input_bonus", "tf_bonus",
                "lowercase", "base_sha256", "dtype")
        side = {k: getattr(self, k) for k in keys}
        side["term_bias"] = digest(self.term_bias_path())  # the files' contents, not their names
        side["adapter"] = [digest(a / "adapter_model.safetensors") for a in self.adapter_paths()]
        return side

    def passage_weighting(self) -> dict:
        """passage_side() without READING_KEYS: what decides a passage term's weight (model, variant, prefix, head
        settings, term bias and adapter files). Encode records it; an index built from those vectors keeps it, and
        search refuses queries from a card whose passage weighting differs (the query side was made for other
        passages: its scores would mix two models)."""
        side = {k: v for k, v in self.passage_side().items() if k not in READING_KEYS}
        if Path(self.base_model).expanduser().is_dir():  # a checkpoint directory, however its path was spelled
            side["base_model"] = str(Path(self.base_model).expanduser().resolve())
        return side

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        out = directory / CARD_FILE
        out.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return out

    @classmethod
    def load(cls, path: str | Path) -> "EncoderCard":
        path = Path(path)
        if path.is_dir():
            path = path / CARD_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CardError(f"encoder card not found: {path}") from None
        except json.JSONDecodeError as e:
            raise CardError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
        known = {f.name for f in dataclasses.fields(cls)} - {"path"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CardError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
        if "name" not in data:
            raise CardError(f"{path}: missing 'name'")
        return cls(**data, path=str(path))

    def with_overrides(self, **overrides) -> "EncoderCard":
        kept = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **kept) if kept else self
