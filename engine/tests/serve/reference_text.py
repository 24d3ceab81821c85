"""Reference text handling for engine/tests/serve_tokenizer.rs: what the PyPI `tokenizers` package and a Jinja
environment set up as transformers sets up its chat templates (sandboxed, trim_blocks, lstrip_blocks,
loopcontrols, raise_exception) make of the same inputs.

stdin: {"tokenizer_dir": DIR, "texts": [str], "chats": [[{"role", "content"}]]}
stdout: {"texts": [{"ids": [int], "decoded": str}], "chats": [{"text": str, "ids": [int]}]}
"""
import json
import sys
from pathlib import Path

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def token(config, key):
    v = config.get(key)
    return v["content"] if isinstance(v, dict) else (v or "")


def main():
    job = json.load(sys.stdin)
    d = Path(job["tokenizer_dir"])
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    config = json.loads((d / "tokenizer_config.json").read_text())
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    template = env.from_string(config["chat_template"])
    texts = []
    for t in job["texts"]:
        ids = tok.encode(t, add_special_tokens=True).ids
        texts.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
    chats = []
    for messages in job["chats"]:
        text = template.render(messages=messages, add_generation_prompt=True,
                               bos_token=token(config, "bos_token"), eos_token=token(config, "eos_token"))
        chats.append({"text": text, "ids": tok.encode(text, add_special_tokens=False).ids})
    json.dump({"texts": texts, "chats": chats}, sys.stdout)


main()
