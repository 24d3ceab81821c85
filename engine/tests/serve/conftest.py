"""Fixtures of the serving tests: `vkae-engine serve` processes on port 0 over the engine's tiny fixture
models on the CPU path, and a small byte-fallback tokenizer made here with the `tokenizers` package.

The binary is $VKAE_ENGINE_BIN (scripts/test.d/45-serve.sh builds it)."""
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "engine" / "fixtures"
API_KEY = "test-key-0123456789"
CONTEXT = 4096

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "serving tokens to many clients at once with continuous batching",
    "héllo wörld, café crème, 東京 and emoji 🙂",
    "a model streams text one token after another",
] * 8


def make_tokenizer(vocab_size):
    """A Gemma-like tokenizer of exactly `vocab_size` ids: the specials, the 256 byte-fallback tokens
    <0x00>..<0xFF>, then BPE tokens learned from a small corpus."""
    learn = vocab_size - len(SPECIALS) - 256
    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.normalizer = normalizers.Replace(" ", "▁")
    t.pre_tokenizer = pre_tokenizers.Split("▁", "merged_with_next")
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=learn, show_progress=False))
    learned = json.loads(t.to_str())["model"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for tok, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if tok not in vocab and len(vocab) < vocab_size:
            vocab[tok] = len(vocab)
    # The small corpus teaches fewer tokens than there is room for; the rest are unused, as Gemma's are.
    while len(vocab) < vocab_size:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    merges = [m for m in learned["merges"]
              if all(p in vocab for p in (m.split(" ") if isinstance(m, str) else m))
              and "".join(m.split(" ") if isinstance(m, str) else m) in vocab]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, s in enumerate(SPECIALS)],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": "▁"}, "behavior": "MergedWithNext",
                          "invert": False},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    text = json.dumps(spec)
    tok = Tokenizer.from_str(text)
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return text


def write_recipe(path, max_batch, max_queue, prefill_chunk=16):
    path.write_text(f"""
name = "test-cpu"
description = "CPU fixture serving for tests."
[model]
family = "e4b"
repo = "vkae/test-fixture"
precision = "bf16"
[kernels]
device = "cpu"
cuda_graphs = false
programmatic_launch = false
projections = "measured"
[batching]
policy = "continuous"
max_batch = {max_batch}
max_context = {CONTEXT}
kv_budget_gib = 1.0
max_queue = {max_queue}
prefill_chunk = {prefill_chunk}
[speculative]
enabled = false
[quality]
max_ppl_relative = 0.005
min_top1_agreement = 0.90
max_mean_kl = 0.002
guard_tokens = 2048
""")


class Server:
    def __init__(self, model_dir, recipe, *extra):
        binary = os.environ.get("VKAE_ENGINE_BIN") or str(ROOT / "target" / "debug" / "vkae-engine")
        self.model_dir = model_dir
        self.proc = subprocess.Popen(
            [binary, "serve", str(model_dir), "--recipe", str(recipe), "--bind", "127.0.0.1:0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, f"no listening line: {line!r}; log: {''.join(self.log)}"
        self.url = m.group(1)
        self.host, self.port = self.url.removeprefix("http://").split(":")
        self.port = int(self.port)

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """e_style with the test's tokenizer and a chat template beside it."""
    d = tmp_path_factory.mktemp("model") / "tiny-e"
    d.mkdir()
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(FIXTURES / "e_style" / f, d / f)
    vocab = json.loads((d / "config.json").read_text())["vocab_size"]
    (d / "tokenizer.json").write_text(make_tokenizer(vocab))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": "<end_of_turn>", "chat_template": CHAT_TEMPLATE}))
    return d


def start(tmp_path_factory, model, max_batch=16, max_queue=64, extra=()):
    recipe = tmp_path_factory.mktemp("recipe") / "recipe.toml"
    write_recipe(recipe, max_batch, max_queue)
    return Server(model, recipe, *extra)


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_dir):
    """The main server: 16 slots, an API key, a small body limit."""
    s = start(tmp_path_factory, model_dir, extra=("--api-key", API_KEY, "--max-body-bytes", "65536"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def narrow_server(tmp_path_factory, model_dir):
    """One slot and a queue of one: the third concurrent request is refused."""
    s = start(tmp_path_factory, model_dir, max_batch=1, max_queue=1)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def ids_only_server(tmp_path_factory):
    """dense_style has no tokenizer.json: token-id prompts only."""
    s = start(tmp_path_factory, FIXTURES / "dense_style")
    yield s
    s.stop()
