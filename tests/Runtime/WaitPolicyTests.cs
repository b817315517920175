using System;
using System.Collections.Generic;
using Pippy.Runtime.Communication;
using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>How a waiting rank is told to wait (PIPPY_WAIT, PIPPY_WAIT_SPIN, PIPPY_WAIT_SLEEP_US, PIPPY_WAIT_BELL_US; docs/runtime-options.md).</summary>
public class WaitPolicyTests
{
    private static WaitPolicy Policy(int cores, params (string Name, string Value)[] variables)
    {
        var set = new Dictionary<string, string>();
        foreach (var (name, value) in variables) set[name] = value;
        return WaitPolicy.FromEnvironment(name => set.TryGetValue(name, out var value) ? value : null, cores);
    }

    [Fact]
    public void RanksWithACoreEachSpinAndRanksThatOutnumberTheCoresSleep()
    {
        Assert.Equal(WaitMode.Spin, Policy(4, ("MPI_LOCALNRANKS", "4")).Mode);
        Assert.Equal(WaitMode.Spin, Policy(4).Mode);
        var shared = Policy(2, ("MPI_LOCALNRANKS", "3"));
        Assert.Equal(WaitMode.Sleep, shared.Mode);
        Assert.Equal(WaitPolicy.DefaultSpinRounds, shared.SpinRounds);
        Assert.Equal(WaitPolicy.DefaultMaxSleepMicroseconds, shared.MaxSleepMicroseconds);
        Assert.Equal(WaitPolicy.DefaultBellMicroseconds, shared.BellMicroseconds);
    }

    [Fact]
    public void TheVariablesChooseTheModeTheSpinAndTheLongestSleep()
    {
        var policy = Policy(2, ("MPI_LOCALNRANKS", "3"), ("PIPPY_WAIT", " Yield "), ("PIPPY_WAIT_SPIN", "500"), ("PIPPY_WAIT_SLEEP_US", "50"));
        Assert.Equal(new WaitPolicy(WaitMode.Yield, 500, 10, 50, WaitPolicy.DefaultBellMicroseconds), policy);
        Assert.Equal(0, Policy(2, ("PIPPY_WAIT_BELL_US", "0")).BellMicroseconds);
        Assert.Equal(WaitMode.Spin, Policy(2, ("MPI_LOCALNRANKS", "3"), ("PIPPY_WAIT", "spin")).Mode);
        Assert.Equal(WaitMode.Sleep, Policy(8, ("PIPPY_WAIT", "sleep")).Mode);
    }

    [Theory]
    [InlineData("PIPPY_WAIT", "block", "PIPPY_WAIT=block: use spin, yield or sleep.")]
    [InlineData("PIPPY_WAIT_SPIN", "-1", "PIPPY_WAIT_SPIN=-1: give a whole number of at least 0.")]
    [InlineData("PIPPY_WAIT_SLEEP_US", "fast", "PIPPY_WAIT_SLEEP_US=fast: give a whole number of at least 1.")]
    [InlineData("PIPPY_WAIT_BELL_US", "-5", "PIPPY_WAIT_BELL_US=-5: give a whole number of at least 0.")]
    public void AValueItCannotReadIsAnErrorThatSaysWhatItTakes(string name, string value, string message) =>
        Assert.Equal(message, Assert.Throws<ArgumentException>(() => Policy(2, (name, value))).Message);
}
