using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using Pippy.Runtime;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// The CUDA IPC path's protocol on 2 real ranks over real MPI, with the CUDA runtime mocked (<see cref="MockCudaIpc"/>:
/// no GPU here, so "device" memory is shared memory on the CPU): both ranks choose IPC, every dtype arrives bit for bit
/// in both directions, each receive buffer's handle is exported once and opened once, a sender waits while the
/// receiver holds the buffer (which is not overwritten meanwhile), a new shape makes a new buffer (the old one freed,
/// its mapping closed), and disposing frees and closes everything.
/// </summary>
public static class CudaIpcMockCheck
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(1);
    private const int Back = 50;
    private const int HoldMilliseconds = 400;

    public static bool Run(PipelineEnvironment mpi)
    {
        bool ok = true;
        int peer = 1 - mpi.Rank;
        var world = MpiCommunicator.World(Timeout);
        var mock = new MockCudaIpc();
        var peers = CudaIpcPeers.Discover(world, CPU, mpiCudaAware: false, "ipc", () => mock);
        ok &= ReceivedTensors.Check(mpi, peers.IpcPeers[peer] && peers.Mistake is null, "the two ranks chose CUDA IPC (mock runtime)");
        if (mpi.Rank == 0) Console.WriteLine(peers.Describe(0));
        ok &= ReceivedTensors.Check(mpi, mock.Live == 0 && mock.MemoryOpens == 1, $"the probe was opened by the peer and freed ({mock.MemoryOpens} opened, {mock.Live} live)");

        using (var transport = new TensorTransport(world, learn: true, staging: new DeviceStaging(mpiCudaAware: false), cudaIpc: new CudaIpcChannel(mock, world, peers.IpcPeers)))
        {
            var held = Array.Empty<ReceivedTensor>();
            for (int round = 0; round < 6; round++)
            {
                if (round == 4)
                {
                    // New shapes (message 0 only): both ends forget, the next messages carry headers again.
                    transport.Forget(0);
                }
                bool hold = round == 2;
                if (mpi.Rank == 0)
                {
                    var clock = Stopwatch.StartNew();
                    var tensors = Tensors(round);
                    for (int k = 0; k < tensors.Length; k++) transport.Send(tensors[k], 1, k);
                    double sendMs = clock.Elapsed.TotalMilliseconds;
                    transport.WaitForSends();
                    var back = transport.Receive(new[] { (1, Back) });
                    ok &= ReceivedTensors.Match(back, BackTensors(round), round, $"[rank {mpi.Rank}] ");
                    foreach (var r in back) if (r.Value is { } v) transport.Return(v);
                    if (round == 3)
                        ok &= ReceivedTensors.Check(mpi, sendMs >= HoldMilliseconds * 0.75, $"round 3's copies waited for rank 1 to give round 2's buffers back ({sendMs:F0} ms)");
                }
                else
                {
                    // Round 2's buffers are held into round 3, while rank 0 sends round 3: its copies must wait.
                    if (round == 3)
                    {
                        Thread.Sleep(HoldMilliseconds);
                        ok &= ReceivedTensors.Check(mpi, ReceivedTensors.Match(held, Tensors(2), 2, $"[rank {mpi.Rank}] "), "round 2's buffers, held, were not written meanwhile");
                        foreach (var r in held) if (r.Value is { } v) transport.Return(v);
                    }
                    var received = transport.Receive(Enumerable.Range(0, Tensors(round).Length).Select(tag => (0, tag)).ToArray());
                    ok &= ReceivedTensors.Match(received, Tensors(round), round, $"[rank {mpi.Rank}] ");
                    transport.Send(BackTensors(round)[0], 0, Back);
                    transport.WaitForSends();
                    if (hold) held = received;
                    else foreach (var r in received) if (r.Value is { } v) transport.Return(v);
                }
                world.Barrier("the end of a round");
                var (exported, opened, closed, freed) = transport.IpcHandleCounts;
                int ipcMessages = transport.PathCounts.ViaCudaIpc;
                if (round == 0)
                    ok &= ReceivedTensors.Check(mpi, ipcMessages == 0 && exported == 1 + (mpi.Rank == 1 ? Dtypes.Length - 1 : 0),
                        $"round 0 went through MPI with headers, and the receiver exported a buffer per message ({exported}, {ipcMessages} via IPC)");
                if (round == 3)
                    ok &= ReceivedTensors.Check(mpi, ipcMessages == 3 * (mpi.Rank == 0 ? Dtypes.Length : 1) && exported == (mpi.Rank == 1 ? Dtypes.Length : 1) && opened == (mpi.Rank == 0 ? Dtypes.Length : 1),
                        $"rounds 1-3 went through CUDA IPC ({ipcMessages}), each handle exported once ({exported}) and opened once ({opened})");
                if (round == 5)
                    ok &= ReceivedTensors.Check(mpi, mpi.Rank == 1 ? exported == Dtypes.Length + 1 && freed == 1 : opened == Dtypes.Length + 1 && closed == 1,
                        $"the new shape made one new buffer and freed the old one (exported {exported}, freed {freed}; opened {opened}, closed {closed})");
            }
            world.Barrier("disposing");
        }
        ok &= ReceivedTensors.Check(mpi, mock.Live == 0, $"disposed: every buffer freed and every mapping closed ({mock.Frees} freed, {mock.MemoryCloses} closed, {mock.Live} live)");
        return ok;
    }

    private static readonly ScalarType[] Dtypes = SharedSlotsCheck.Dtypes;

    /// <summary>A tensor of every dtype (random bits of each), an empty one and no tensor; from round 4 on, message 0 has another shape.</summary>
    private static Tensor?[] Tensors(int round)
    {
        var g = new Generator(300 + (ulong)round);
        var tensors = new Tensor?[Dtypes.Length + 2];
        for (int k = 0; k < Dtypes.Length; k++)
        {
            long[] shape = k == 0 ? new long[] { round >= 4 ? 70 : 3, 5 } : new long[] { 1 + k % 3, 2 + k % 4 };
            tensors[k] = Dtypes[k] switch
            {
                ScalarType.Bool => rand(shape, generator: g) > 0.5,
                ScalarType.Byte => randint(0, 256, shape, dtype: ScalarType.Byte, generator: g),
                ScalarType.Int8 => randint(-128, 128, shape, dtype: ScalarType.Int8, generator: g),
                ScalarType.Int16 or ScalarType.Int32 or ScalarType.Int64 => randint(-30000, 30000, shape, dtype: Dtypes[k], generator: g),
                ScalarType.ComplexFloat32 or ScalarType.ComplexFloat64 => randn(shape, dtype: Dtypes[k], generator: g),
                var floating => randn(shape, generator: g).to_type(floating),
            };
        }
        tensors[Dtypes.Length] = zeros(0, 3);
        tensors[Dtypes.Length + 1] = null;
        return tensors;
    }

    private static Tensor?[] BackTensors(int round) => new Tensor?[] { arange(64, dtype: ScalarType.Float32) * (round + 1) };


}
