using System;

namespace Pippy.Runtime.Communication
{
    /// <summary>
    /// How a rank waits for MPI requests: it polls (MPI moves messages only while it is called), first spinning, then,
    /// where ranks outnumber cores, giving its core back between polls, so that the rank it waits for, which may need
    /// that very core, can run. Chosen once per process from the environment (docs/runtime-options.md):
    /// <list type="bullet">
    /// <item><c>PIPPY_WAIT=spin</c>: poll without pause (the default where every rank has a core of its own).</item>
    /// <item><c>PIPPY_WAIT=yield</c>: after the spin, sched_yield between polls.</item>
    /// <item><c>PIPPY_WAIT=sleep</c>: after the spin, sleep between polls, from <see cref="FirstSleepMicroseconds"/> doubling up to
    /// <see cref="MaxSleepMicroseconds"/> (the default where MPI_LOCALNRANKS exceeds the cores).</item>
    /// <item><c>PIPPY_WAIT_SPIN=n</c>: polls before backing off (default <see cref="DefaultSpinRounds"/>).</item>
    /// <item><c>PIPPY_WAIT_SLEEP_US=n</c>: the longest sleep between polls, in microseconds (default <see cref="DefaultMaxSleepMicroseconds"/>).</item>
    /// <item><c>PIPPY_WAIT_BELL_US=n</c>: with sleep, a rank waiting for a message from a rank of its machine sleeps on its
    /// doorbell (<see cref="Transport.Doorbell"/>), which the sender rings, for up to n microseconds between polls
    /// (default <see cref="DefaultBellMicroseconds"/>; 0: no doorbell, timed sleeps only).</item>
    /// </list>
    /// </summary>
    internal sealed record WaitPolicy(WaitMode Mode, int SpinRounds, int FirstSleepMicroseconds, int MaxSleepMicroseconds, int BellMicroseconds)
    {
        public const int DefaultSpinRounds = 64;
        public const int DefaultMaxSleepMicroseconds = 50;
        public const int DefaultBellMicroseconds = 2000;

        /// <summary>The policy of this process, from PIPPY_WAIT, PIPPY_WAIT_SPIN, PIPPY_WAIT_SLEEP_US, PIPPY_WAIT_BELL_US and MPI_LOCALNRANKS.</summary>
        public static WaitPolicy Current { get; } = FromEnvironment(Environment.GetEnvironmentVariable, Environment.ProcessorCount);

        /// <param name="variable">Reads an environment variable (a test gives its own).</param>
        /// <param name="cores">The machine's cores.</param>
        public static WaitPolicy FromEnvironment(Func<string, string?> variable, int cores)
        {
            bool oversubscribed = int.TryParse(variable("MPI_LOCALNRANKS"), out int local) && local > cores;
            var mode = variable("PIPPY_WAIT")?.Trim().ToLowerInvariant() switch
            {
                null or "" => oversubscribed ? WaitMode.Sleep : WaitMode.Spin,
                "spin" => WaitMode.Spin,
                "yield" => WaitMode.Yield,
                "sleep" => WaitMode.Sleep,
                var other => throw new ArgumentException($"PIPPY_WAIT={other}: use spin, yield or sleep."),
            };
            int spin = Number(variable, "PIPPY_WAIT_SPIN", DefaultSpinRounds, minimum: 0);
            int maxSleep = Number(variable, "PIPPY_WAIT_SLEEP_US", DefaultMaxSleepMicroseconds, minimum: 1);
            int bell = Number(variable, "PIPPY_WAIT_BELL_US", DefaultBellMicroseconds, minimum: 0);
            return new WaitPolicy(mode, spin, Math.Min(10, maxSleep), maxSleep, bell);
        }

        private static int Number(Func<string, string?> variable, string name, int fallback, int minimum)
        {
            string? text = variable(name);
            if (string.IsNullOrWhiteSpace(text)) return fallback;
            return int.TryParse(text, out int value) && value >= minimum
                ? value
                : throw new ArgumentException($"{name}={text}: give a whole number of at least {minimum}.");
        }
    }

    /// <summary>What a waiting rank does between polls once its spin is over.</summary>
    internal enum WaitMode
    {
        Spin,
        Yield,
        Sleep,
    }
}
