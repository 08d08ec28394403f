"""Tests of the image augmentation in dlrun/training/step.py `augment`: left-right flips
(augment.flip) and padded random crops (augment.shift) of 3-channel 32x32 images."""

import jax
import jax.numpy as jnp
import numpy as np

from dlrun.training import step


def program(**fields):
    # augment reads only the augment fields; the rest of a Program does not matter here
    return step.Program(
        model=None,
        optimizer=None,
        loss_name="cross_entropy",
        task="classification",
        input_shape=(32, 32, 3),
        batch_size=16,
        steps_per_epoch=1,
        **fields,
    )


def images(n=16):
    # every pixel of every channel distinct, so a mirror or a crop is unambiguous
    return jnp.arange(n * 32 * 32 * 3, dtype=jnp.float32).reshape(n, 32, 32, 3)


def test_flip_mirrors_exactly_the_images_its_key_picks():
    x, key = images(), jax.random.PRNGKey(7)
    out = np.asarray(step.augment(program(augment_flip=True), x, key, 0.0))
    # closed form: image i is mirrored iff bernoulli(fold_in(key, 1), 1/2)[i]
    picked = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 1), 0.5, (16,)))
    assert 0 < picked.sum() < 16
    np.testing.assert_array_equal(np.asarray(step.flip_mask(key, 16)), picked)
    x = np.asarray(x)
    for i in range(16):
        np.testing.assert_array_equal(out[i], x[i, :, ::-1, :] if picked[i] else x[i])


def test_a_flipped_batch_is_the_mirror_of_the_original():
    x = np.asarray(images(4))  # a key that mirrors all four: one in 16 does
    key = next(
        jax.random.PRNGKey(s)
        for s in range(100)
        if np.asarray(step.flip_mask(jax.random.PRNGKey(s), 4)).all()
    )
    out = np.asarray(step.augment(program(augment_flip=True), jnp.asarray(x), key, 0.0))
    for c in range(32):  # column c of the output is column 31 - c of the input, in every channel
        np.testing.assert_array_equal(out[:, :, c, :], x[:, :, 31 - c, :])
    twice = step.augment(program(augment_flip=True), jnp.asarray(out), key, 0.0)
    np.testing.assert_array_equal(np.asarray(twice), x)


def test_shift_crops_all_three_channels_alike_from_the_zero_padded_image():
    x = np.asarray(images(8))
    out = np.asarray(step.augment(program(augment_shift=4), jnp.asarray(x), jax.random.PRNGKey(1), 0.0))
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    offsets = []
    for i in range(8):
        found = [
            (dr, dc)
            for dr in range(9)
            for dc in range(9)
            if np.array_equal(padded[i, dr : dr + 32, dc : dc + 32, :], out[i])
        ]
        assert len(found) == 1  # one crop offset explains every channel of the image
        offsets.append(found[0])
    assert len(set(offsets)) > 1


def test_without_flip_the_shift_draws_are_unchanged():
    x, key = images(8), jax.random.PRNGKey(2)
    plain = step.augment(program(augment_shift=2), x, key, 0.0)
    both = step.augment(program(augment_shift=2, augment_flip=True), x, key, 0.0)
    mask = np.asarray(step.flip_mask(key, 8))
    expected = np.where(mask[:, None, None, None], np.asarray(plain)[:, :, ::-1, :], np.asarray(plain))
    np.testing.assert_array_equal(np.asarray(both), expected)
