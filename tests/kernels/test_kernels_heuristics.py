"""num_kv_splits: split only when the batch alone cannot fill the GPU, never below a useful split length."""

from kvsim.kernels.heuristics import MAX_KV_SPLITS, choose_num_kv_splits, next_power_of_2, tokens_per_split

H100_SMS = 132


def test_large_batch_barely_splits():
    # Llama-3-8B decode, 64 sequences x 8 KV heads = 512 programs: two splits reach 4 programs per SM
    assert choose_num_kv_splits(64, 8, 4096, 64, H100_SMS) == 2
    assert choose_num_kv_splits(256, 8, 4096, 64, H100_SMS) == 1


def test_one_long_sequence_splits_up_to_the_cap():
    assert choose_num_kv_splits(1, 8, 32768, 64, H100_SMS) == MAX_KV_SPLITS
    assert choose_num_kv_splits(1, 8, 4096, 64, H100_SMS) == 16  # 4096 / 256 tokens per split


def test_short_sequences_are_not_split():
    assert choose_num_kv_splits(1, 8, 300, 64, H100_SMS) == 1
    assert choose_num_kv_splits(1, 8, 1, 64, H100_SMS) == 1


def test_splits_are_whole_tiles_and_cover_the_sequence():
    for max_seq_len in (1, 63, 64, 65, 1000, 4096):
        for splits in (1, 3, 7):
            per_split = tokens_per_split(max_seq_len, splits, 64)
            assert per_split % 64 == 0
            assert per_split * splits >= max_seq_len


def test_next_power_of_2():
    assert [next_power_of_2(n) for n in (1, 2, 3, 4, 5, 16, 17)] == [1, 2, 4, 4, 8, 16, 32]
