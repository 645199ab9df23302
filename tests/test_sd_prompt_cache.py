"""srbench.nn.sd: the prompt-embedding cache is bounded (LRU) and returns what a fresh encode gives."""

import torch

from srbench.nn.sd import SD_COMPONENTS, SD_MODULES, encode_prompt, load_sd_components
from srbench.weights import SD_COMPONENTS as WEIGHTS_SD_COMPONENTS


def test_component_list_defined_once():
    assert SD_COMPONENTS is WEIGHTS_SD_COMPONENTS
    assert set(SD_MODULES) <= set(SD_COMPONENTS)


def test_prompt_cache_is_bounded_lru_and_exact():
    sd = load_sd_components("tiny", components=("text_encoder", "tokenizer"))
    sd.prompt_cache_size = 3
    calls = []
    te = sd.text_encoder
    orig = te.forward
    te.forward = lambda ids, *a, **k: (calls.append(ids.shape[0]), orig(ids, *a, **k))[1]
    first = encode_prompt(sd, ["a", "b"])
    encode_prompt(sd, "c")
    encode_prompt(sd, "a")  # hit: 'a' becomes most recent
    encode_prompt(sd, "d")  # evicts 'b' (least recently used)
    assert list(sd.prompt_cache) == ["c", "a", "d"]
    assert calls == [2, 1, 1]
    again = encode_prompt(sd, ["b", "a", "b"])  # 'b' re-encoded once, duplicates share it
    assert calls == [2, 1, 1, 1] and len(sd.prompt_cache) == 3
    torch.testing.assert_close(again[0], first[1], atol=0, rtol=0)
    torch.testing.assert_close(again[1], first[0], atol=0, rtol=0)
