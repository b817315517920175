using System.Runtime.InteropServices;

namespace Pippy.Runtime.Native
{
    /// <summary>The C library's sleep with microsecond resolution (.NET's Thread.Sleep counts whole milliseconds).</summary>
    internal static class Libc
    {
        [DllImport("libc", EntryPoint = "usleep")]
        private static extern int USleep(uint microseconds);

        public static void SleepMicroseconds(uint microseconds) => USleep(microseconds);
    }
}
