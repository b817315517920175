using System;
using System.Runtime.InteropServices;

namespace Pippy.Runtime.Native
{
    /// <summary>
    /// Linux futexes on memory shared between processes: a thread sleeps in the kernel until another process changes
    /// the word and wakes it, with no polling and so no timer wake-ups in between. Called through libc's syscall(),
    /// which is a plain register shuffle (not a C variadic), so a fixed P/Invoke signature is safe.
    /// </summary>
    internal static unsafe class Futex
    {
        private const int Wait = 0, Wake = 1;

        private static readonly long SystemCall = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 202,
            Architecture.Arm64 => 98,
            var other => throw new PlatformNotSupportedException($"No futex system call number known for {other}."),
        };

        [StructLayout(LayoutKind.Sequential)]
        private struct TimeSpec
        {
            public long Seconds;
            public long Nanoseconds;
        }

        [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
        private static extern long Call(long number, int* word, int operation, int value, TimeSpec* timeout, int* word2, int value3);

        /// <summary>Sleeps while <paramref name="word"/> still holds <paramref name="expected"/>, at most <paramref name="microseconds"/> (a wake, a change, a signal or the time ends it).</summary>
        public static void WaitWhile(int* word, int expected, long microseconds)
        {
            var timeout = new TimeSpec { Seconds = microseconds / 1_000_000, Nanoseconds = microseconds % 1_000_000 * 1000 };
            Call(SystemCall, word, Wait, expected, &timeout, null, 0);
        }

        /// <summary>Wakes every thread sleeping on <paramref name="word"/>, in any process.</summary>
        public static void WakeAll(int* word) => Call(SystemCall, word, Wake, int.MaxValue, null, null, 0);
    }
}
