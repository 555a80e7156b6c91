from arnab_lab import bench_channel


def test_every_channel_runs_as_often_and_opens_a_round_as_often_as_the_others():
    runs = bench_channel.order(9)
    assert sorted(runs) == sorted(bench_channel.CHANNELS * 3)
    rounds = [runs[i:i + 3] for i in range(0, 9, 3)]
    assert all(sorted(r) == sorted(bench_channel.CHANNELS) for r in rounds)     # each round has every channel
    assert sorted(r[0] for r in rounds) == sorted(bench_channel.CHANNELS)      # and each goes first once
