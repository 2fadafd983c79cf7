"""The tiny causal language model: corpus, tokenizer, cache, training, generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paperlab import tinylm

SMALL = tinylm.TinyLMConfig(
    vocab_size=65, d_model=16, n_layers=2, n_heads=2, context=16
)


@pytest.fixture(scope="module")
def small_model() -> tinylm.TrainedLM:
    return tinylm.train_tiny_lm(SMALL, steps=40, batch_size=8, lr=1e-2, seed=3)


def test_corpus_and_split():
    text = tinylm.load_corpus()
    assert text.startswith("Hamlet") and len(set(text)) == 65
    train, val = tinylm.split_corpus(text)
    assert train + val == text
    assert len(val) == round(0.1 * len(text))
    assert tinylm.split_corpus("abcdefghij", 0.3) == ("abcdefg", "hij")


def test_tokenizer_round_trip_and_unknown_characters():
    tokenizer = tinylm.CharTokenizer.from_text("hello world")
    assert tokenizer.vocab_size == 8 and tokenizer.chars == " dehlorw"
    ids = tokenizer.encode("low held")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [4, 5, 7, 0, 3, 2, 4, 1])
    assert tokenizer.decode(ids) == "low held"
    assert tokenizer.decode(torch.from_numpy(ids)) == "low held"
    assert tokenizer.encode("").shape == (0,)
    with pytest.raises(ValueError, match=r"\['!', 'x'\]"):
        tokenizer.encode("hex!")
    with pytest.raises(ValueError, match="ids must lie in 0..7"):
        tokenizer.decode([8])
    with pytest.raises(ValueError, match="repeat"):
        tinylm.CharTokenizer("aa")


def test_config_validation():
    assert tinylm.TinyLMConfig(vocab_size=10).ff_dim == 256
    assert tinylm.TinyLMConfig(vocab_size=10, d_ff=32).ff_dim == 32
    with pytest.raises(ValueError, match="n_heads must divide d_model"):
        tinylm.TinyLMConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="context must be >= 1"):
        tinylm.TinyLMConfig(vocab_size=10, context=0)
    with pytest.raises(TypeError, match="vocab_size must be an integer"):
        tinylm.TinyLMConfig(vocab_size=10.0)


def test_named_linear_layers_exist():
    model = tinylm.TinyCausalLM(SMALL)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        layer = getattr(model.blocks[1].attn, name)
        assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (16, 16)
    assert model.blocks[0].mlp.fc_in.weight.shape == (64, 16)
    assert model.head.weight.shape == (65, 16)
    assert model.head.weight is not model.tok_emb.weight


def test_cached_logits_equal_full_forward(small_model):
    model = small_model.model
    ids = torch.from_numpy(small_model.tokenizer.encode("To be, or not to be"))[None]
    ids = ids[:, :16]
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        pieces = [model(ids[:, :5], cache), model(ids[:, 5:6], cache)]
        pieces += [model(ids[:, t : t + 1], cache) for t in range(6, 16)]
    assert cache.length == 16
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=0)


def test_the_model_is_causal(small_model):
    ids = torch.randint(0, 65, (2, 12), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 65
    with torch.no_grad():
        a, b = small_model.model(ids), small_model.model(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_cache_shapes_bytes_and_numpy_view(small_model):
    logits, cache = tinylm.prefill(small_model.model, np.arange(10))
    assert logits.shape == (10, 65)
    K, V = cache.as_numpy()
    assert K.shape == V.shape == (2, 2, 10, 8) and K.dtype == np.float32
    assert cache.nbytes() == 2 * 2 * (2 * 10 * 8) * 4
    assert cache.keys[0].shape == (1, 2, 10, 8)
    with pytest.raises(ValueError, match="empty"):
        tinylm.KVCache(2).as_numpy()


def test_cached_greedy_generation_matches_recomputation(small_model):
    prompt = small_model.tokenizer.encode("KING\n")
    # 30 new ids overrun the context of 16, so the sliding window is exercised too.
    with_cache = tinylm.generate(small_model.model, prompt, 30, use_cache=True)
    without = tinylm.generate(small_model.model, prompt, 30, use_cache=False)
    assert with_cache.shape == (30,) and with_cache.dtype == np.int64
    np.testing.assert_array_equal(with_cache, without)
    assert tinylm.generate(small_model.model, prompt, 0).shape == (0,)


def test_training_is_deterministic_and_loss_falls(small_model):
    losses = np.array(small_model.losses)
    assert len(losses) == 40
    assert losses[-10:].mean() < losses[:5].mean() - 0.5
    again = tinylm.train_tiny_lm(SMALL, steps=40, batch_size=8, lr=1e-2, seed=3)
    assert again.losses == small_model.losses
    other = tinylm.train_tiny_lm(SMALL, steps=40, batch_size=8, lr=1e-2, seed=4)
    assert other.losses != small_model.losses
    assert not small_model.model.training


def test_evaluate_loss_and_windows(small_model):
    ids = small_model.tokenizer.encode(tinylm.split_corpus()[1])
    loss = tinylm.evaluate_loss(small_model.model, ids, 16, max_windows=50)
    assert 0 < loss < np.log(65)
    untrained = tinylm.TinyCausalLM(SMALL)
    assert tinylm.evaluate_loss(untrained, ids, 16, max_windows=50) > loss
    assert tinylm.bits_per_char(np.log(2)) == pytest.approx(1.0)


def test_pretrained_base_beats_unigram_and_is_cached():
    trained = tinylm.pretrained_tiny_lm("base")
    assert tinylm.pretrained_tiny_lm("base", seed=0) is trained
    assert trained.model.config.d_model == 64 and trained.model.config.n_layers == 2
    train, val = tinylm.split_corpus()
    tok = trained.tokenizer
    val_bpc = tinylm.bits_per_char(
        tinylm.evaluate_loss(trained.model, tok.encode(val), 64)
    )
    unigram = tinylm.unigram_bits_per_char(
        tok.encode(train), tok.encode(val), tok.vocab_size
    )
    assert val_bpc < unigram - 1.0
    copy = trained.fresh_copy()
    with torch.no_grad():
        copy.model.head.weight.zero_()
    assert trained.model.head.weight.abs().sum() > 0


def test_linear_inputs_capture_the_layer_input(small_model):
    model = small_model.model
    ids = np.arange(24).reshape(2, 12)
    X = tinylm.linear_inputs(model, ids, "blocks.1.mlp.fc_out")
    assert X.shape == (24, 64) and X.dtype == np.float32
    with torch.no_grad():
        h = model.tok_emb(torch.from_numpy(ids)) + model.pos_emb(torch.arange(12))
        h = model.blocks[0](h)
        h = h + model.blocks[1].attn(model.blocks[1].ln1(h))
        expected = torch.nn.functional.gelu(
            model.blocks[1].mlp.fc_in(model.blocks[1].ln2(h))
        )
    np.testing.assert_allclose(X, expected.reshape(24, 64).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="not a Linear"):
        tinylm.linear_inputs(model, ids, "blocks.0.ln1")
    with pytest.raises(ValueError, match="not a submodule"):
        tinylm.linear_inputs(model, ids, "blocks.0.nope")


def test_bad_inputs_raise(small_model):
    model = small_model.model
    with pytest.raises(TypeError, match="LongTensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="ids must lie in 0..64"):
        model(torch.tensor([[65]]))
    with pytest.raises(ValueError, match="exceed the context of 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 10, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="10 cached \\+ 7 new"):
        model(torch.zeros(1, 7, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="cache has 1 layers"):
        model(torch.zeros(1, 2, dtype=torch.long), tinylm.KVCache(1))
    with pytest.raises(ValueError, match="prompt_ids must have at least 1"):
        tinylm.generate(model, [], 3)
    with pytest.raises(ValueError, match="n_new must be >= 0"):
        tinylm.generate(model, [1], -1)
    with pytest.raises(ValueError, match="context must be <= 16"):
        tinylm.evaluate_loss(model, np.arange(40), 32)
    with pytest.raises(ValueError, match="vocab_size is 10"):
        tinylm.train_tiny_lm(
            tinylm.TinyLMConfig(vocab_size=10), steps=1, batch_size=1, lr=1e-3, seed=0
        )
    with pytest.raises(ValueError, match="size must be one of"):
        tinylm.pretrained_tiny_lm("huge")
    with pytest.raises(ValueError, match="lr must be > 0"):
        tinylm.train_tiny_lm(SMALL, steps=1, batch_size=1, lr=0.0, seed=0)


def test_unigram_baseline_rejects_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match="train_ids must lie in 0..3"):
        tinylm.unigram_bits_per_char(np.array([0, 4]), np.array([1]), 4)
    with pytest.raises(TypeError, match="val_ids must hold integers"):
        tinylm.unigram_bits_per_char(np.array([0, 1]), np.array([1.5]), 4)
