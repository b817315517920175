using System;
using System.Linq;
using System.Threading;
using Pippy.Runtime;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Transport;
using TorchSharp;
using static TorchSharp.torch;

namespace ParityApp;

/// <summary>
/// The transport's shared-memory path on 2 ranks of one machine, message by message: a tensor of every dtype but the
/// quantized ones (12), an empty tensor and "no tensor" arrive bit for bit (and through MPI alone too), slots are reused once the receiver gives them back and multiply while it holds them, a sender that
/// disposes its transport before the receiver has looked still delivers, and a rank that will not share memory makes
/// both keep to MPI.
/// </summary>
public static class SharedSlotsCheck
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(1);

    public static bool Run(PipelineEnvironment mpi)
    {
        bool ok = true;
        var peers = SharedMemoryPeers.Discover(MpiCommunicator.World(Timeout), willing: true);
        ok &= ReceivedTensors.Check(mpi, peers.IsShared(1 - mpi.Rank), "the two ranks share memory");
        using (var transport = new TensorTransport(MpiCommunicator.World(Timeout), learn: true, sharedMemory: peers))
        {
            // Rounds 0-2 give every buffer back at once; round 3 holds them until round 4 has arrived, so its sends find no free slot.
            var held = Array.Empty<ReceivedTensor>();
            for (int round = 0; round < 5; round++)
            {
                var received = Exchange(mpi, transport, round);
                if (mpi.Rank == 1)
                {
                    ok &= ReceivedTensors.Match(received, Tensors(round), round);
                    if (round == 0) ok &= ReceivedTensors.Check(mpi, received.Take(Dtypes.Length).Select(r => r.Value?.dtype).SequenceEqual(Dtypes.Select(d => (ScalarType?)d)),
                        $"through shared memory, bit for bit: {string.Join(", ", Dtypes)}");
                    foreach (var r in held.Concat(round == 3 ? Array.Empty<ReceivedTensor>() : received)) if (r.Value is { } v) transport.Return(v);
                    held = round == 3 ? received : Array.Empty<ReceivedTensor>();
                }
                mpi.Barrier();
                if (mpi.Rank == 0 && round == 2) ok &= ReceivedTensors.Check(mpi, transport.SharedSlotsCreated == NonEmpty, $"rounds 0-2 created one slot per non-empty tensor ({NonEmpty}), created {transport.SharedSlotsCreated}");
            }
            if (mpi.Rank == 0) ok &= ReceivedTensors.Check(mpi, transport.SharedSlotsCreated == 2 * NonEmpty, $"round 4, sent while round 3's slots were held, created {NonEmpty} more ({2 * NonEmpty}), created {transport.SharedSlotsCreated}");

            // New messages (tags 100-113, larger): new slots, which rank 0 disposes right after sending, while rank 1
            // looks only later. The sender keeps a slot's memory until its receiver has given it back.
            if (mpi.Rank == 0) Exchange(mpi, transport, LateRound);
            else
            {
                Thread.Sleep(500);
                var late = Exchange(mpi, transport, LateRound);
                ok &= ReceivedTensors.Match(late, Tensors(LateRound), LateRound);
                foreach (var r in late) if (r.Value is { } v) transport.Return(v);
            }
        }

        // A rank that will not share memory (PipelineOptions.SharedMemory = false there): both keep to MPI.
        var unwilling = SharedMemoryPeers.Discover(MpiCommunicator.World(Timeout), willing: mpi.Rank == 0);
        ok &= ReceivedTensors.Check(mpi, unwilling.Count == 0, "with one rank unwilling, no rank shares memory");
        using (var transport = new TensorTransport(MpiCommunicator.World(Timeout), learn: true, sharedMemory: unwilling))
        {
            var received = Exchange(mpi, transport, 0);
            if (mpi.Rank == 1) ok &= ReceivedTensors.Check(mpi, ReceivedTensors.Match(received, Tensors(0), 0), $"through MPI, bit for bit: {string.Join(", ", Dtypes)}");
            ok &= ReceivedTensors.Check(mpi, transport.SharedSlotsCreated == 0, "and sends through MPI alone");
        }
        return ok;
    }

    private const int LateRound = 9;

    /// <summary>Rank 0 sends the round's tensors (tags 0-13, or 100-113 in the late round); rank 1 receives them.</summary>
    private static ReceivedTensor[] Exchange(PipelineEnvironment mpi, TensorTransport transport, int round)
    {
        var tensors = Tensors(round);
        int first = round == LateRound ? 100 : 0;
        if (mpi.Rank == 0)
        {
            for (int k = 0; k < tensors.Length; k++) transport.Send(tensors[k], 1, first + k);
            transport.WaitForSends();
            return Array.Empty<ReceivedTensor>();
        }
        return transport.Receive(Enumerable.Range(first, tensors.Length).Select(tag => (0, tag)).ToArray());
    }

    /// <summary>Every dtype of TorchSharp but the quantized ones, each in a message of its own.</summary>
    public static readonly ScalarType[] Dtypes =
    {
        ScalarType.Byte, ScalarType.Int8, ScalarType.Int16, ScalarType.Int32, ScalarType.Int64, ScalarType.Float16, ScalarType.BFloat16,
        ScalarType.Float32, ScalarType.Float64, ScalarType.ComplexFloat32, ScalarType.ComplexFloat64, ScalarType.Bool,
    };

    /// <summary>A tensor of every dtype (random bits of each), an empty one and no tensor.</summary>
    private static Tensor?[] Tensors(int round)
    {
        var g = new Generator(100 + (ulong)round);
        long rows = round == LateRound ? 300 : 3;
        var tensors = new Tensor?[Dtypes.Length + 2];
        for (int k = 0; k < Dtypes.Length; k++)
        {
            long[] shape = k == 0 ? new long[] { rows, 5 } : new long[] { 1 + k % 3, 2 + k % 4 };
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

    /// <summary>The messages of a round that carry memory (a slot each).</summary>
    public static int NonEmpty => Dtypes.Length;


}
