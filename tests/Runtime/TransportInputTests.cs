using System;
using Pippy.Runtime.Communication;
using Pippy.Runtime.Transport;
using TorchSharp;
using Xunit;

namespace Pippy.Tests.Runtime;

/// <summary>
/// What the transport refuses, before any MPI call: memory it cannot send as it lies. (Stage outputs never reach it
/// that way: the interpreter hands views over as contiguous copies; see ReliabilityTests.ANonContiguousBoundaryValue...)
/// </summary>
[Collection(nameof(DefaultDeviceCollection))] // makes a meta tensor: keep away from tests creating tensors meanwhile
public class TransportInputTests
{
    private static TensorTransport Transport() => new(MpiCommunicator.Borrowed(0, TimeSpan.FromSeconds(1)), learn: true, staging: new DeviceStaging(mpiCudaAware: false));

    [Fact]
    public void ANonContiguousTensorIsAClearError()
    {
        var transposed = torch.randn(4, 3).t();
        var error = Assert.Throws<ArgumentException>(() => Transport().Send(transposed, destination: 1, tag: 0));
        Assert.Contains("Float32 [3, 4] tensor that is not contiguous (strides 1, 3) cannot be sent", error.Message);
        Assert.Contains("Call contiguous() first", error.Message);
    }

    [Fact]
    public void ATensorWithoutMemoryIsAClearError()
    {
        var meta = torch.empty(new long[] { 2, 2 }, device: torch.META);
        var error = Assert.Throws<ArgumentException>(() => Transport().Send(meta, destination: 1, tag: 0));
        Assert.Contains("on the meta device cannot be sent", error.Message);
        Assert.Contains("Move it to the CPU or a CUDA device", error.Message);
    }
}
