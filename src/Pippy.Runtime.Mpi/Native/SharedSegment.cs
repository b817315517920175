using System;
using System.Runtime.InteropServices;

namespace Pippy.Runtime.Native
{
    /// <summary>
    /// A block of memory two processes of one machine both map: created as an anonymous memory file (memfd_create)
    /// by one and opened by the other through /proc/&lt;pid&gt;/fd/&lt;fd&gt;. Nothing is left behind when the
    /// processes end, however they end, since the memory has no name in any file system.
    /// </summary>
    internal sealed unsafe class SharedSegment : IDisposable
    {
        private const int MfdCloexec = 1;
        private const int ProtReadWrite = 0x1 | 0x2;
        private const int MapShared = 0x01;
        private const int OpenReadWrite = 0x2;
        private const int OpenCloexec = 0x80000;
        private static readonly IntPtr MapFailed = new(-1);

        private int _fd;

        private SharedSegment(IntPtr address, long length, int fd)
        {
            Address = address;
            Length = length;
            _fd = fd;
        }

        /// <summary>The mapping's first byte (page aligned).</summary>
        public IntPtr Address { get; private set; }

        public long Length { get; }

        /// <summary>The descriptor another process opens the segment by, with this process's id (-1 once closed, or for an opened one).</summary>
        public int Descriptor => _fd;

        /// <summary>A new zero-filled segment of <paramref name="length"/> bytes, mapped here and open to processes of the same user.</summary>
        public static SharedSegment Create(long length, string name)
        {
            int fd = memfd_create(name, MfdCloexec);
            if (fd < 0) throw Failure("memfd_create", name);
            if (ftruncate(fd, length) != 0)
            {
                var error = Failure($"ftruncate to {length} bytes", name);
                close(fd);
                throw error;
            }
            return new SharedSegment(Map(fd, length, name), length, fd);
        }

        /// <summary>Maps the segment that process <paramref name="pid"/> holds open as <paramref name="descriptor"/>.</summary>
        public static SharedSegment Open(int pid, int descriptor, long length)
        {
            string path = $"/proc/{pid}/fd/{descriptor}";
            int fd = open(path, OpenReadWrite | OpenCloexec);
            if (fd < 0) throw Failure("open", path);
            try
            {
                return new SharedSegment(Map(fd, length, path), length, fd: -1);
            }
            finally
            {
                // The mapping keeps the memory; the descriptor is not needed any more.
                close(fd);
            }
        }

        private static IntPtr Map(int fd, long length, string what)
        {
            IntPtr address = mmap(IntPtr.Zero, (nuint)length, ProtReadWrite, MapShared, fd, 0);
            if (address == MapFailed) throw Failure($"mmap of {length} bytes", what);
            return address;
        }

        private static InvalidOperationException Failure(string call, string what) =>
            new($"{call} ({what}) failed: {Marshal.GetLastPInvokeErrorMessage()}. Shared memory between the ranks of one machine can be turned off " +
                "with PipelineOptions.SharedMemory = false (or PIPPY_SHARED_MEMORY=0); messages then go through MPI alone.");

        public void Dispose()
        {
            if (Address != IntPtr.Zero)
            {
                munmap(Address, (nuint)Length);
                Address = IntPtr.Zero;
            }
            if (_fd >= 0) close(_fd);
            _fd = -1;
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int memfd_create(string name, uint flags);

        [DllImport("libc", SetLastError = true)]
        private static extern int ftruncate(int fd, long length);

        [DllImport("libc", SetLastError = true)]
        private static extern IntPtr mmap(IntPtr address, nuint length, int protection, int flags, int fd, long offset);

        [DllImport("libc", SetLastError = true)]
        private static extern int munmap(IntPtr address, nuint length);

        [DllImport("libc", SetLastError = true)]
        private static extern int open(string path, int flags);

        [DllImport("libc", SetLastError = true)]
        private static extern int close(int fd);
    }
}
