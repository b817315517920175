using System.Diagnostics;
using System.Threading;
using Pippy.Runtime.Native;
using Pippy.Runtime.Transport;
using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The doorbell a waiting rank sleeps on (a futex in shared memory): a ring wakes a sleeper long before its timeout,
/// and a ring that comes between reading the count and going to sleep is not lost. Across processes it runs in every
/// parity test with more ranks than cores, where waits sleep on it.
/// </summary>
public class DoorbellTests
{
    private static readonly long Long = 20_000_000; // 20 s in microseconds: far longer than any wake-up here

    [Fact]
    public void ARingWakesASleeperBeforeItsTimeout()
    {
        using var segment = SharedSegment.Create(4096, "pippy-doorbell-test");
        var bell = new Doorbell(segment.Address);
        double slept = -1;
        var sleeper = new Thread(() =>
        {
            var clock = Stopwatch.StartNew();
            bell.SleepUnlessRung(bell.Seen, Long);
            slept = clock.Elapsed.TotalSeconds;
        });
        sleeper.Start();
        Thread.Sleep(200);
        bell.Ring();
        Assert.True(sleeper.Join(10_000), "the sleeper did not wake within 10 s of the ring");
        Assert.InRange(slept, 0.1, 10);
    }

    [Fact]
    public void ARingBeforeTheSleepIsNotLost()
    {
        using var segment = SharedSegment.Create(4096, "pippy-doorbell-test");
        var bell = new Doorbell(segment.Address);
        int seen = bell.Seen;
        bell.Ring();
        var clock = Stopwatch.StartNew();
        bell.SleepUnlessRung(seen, Long);
        Assert.True(clock.Elapsed.TotalSeconds < 10, "a sleep after a ring it had not seen waited for its timeout");
        Assert.Equal(seen + 1, bell.Seen);
    }

    [Fact]
    public void WithoutARingTheSleepEndsAtItsTimeout()
    {
        using var segment = SharedSegment.Create(4096, "pippy-doorbell-test");
        var bell = new Doorbell(segment.Address);
        var clock = Stopwatch.StartNew();
        bell.SleepUnlessRung(bell.Seen, 50_000);
        Assert.True(clock.Elapsed.TotalMilliseconds >= 40, $"a 50 ms sleep without a ring ended after {clock.Elapsed.TotalMilliseconds:0.0} ms");
    }
}
