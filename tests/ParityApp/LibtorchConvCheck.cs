using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp;

/// <summary>
/// Scenario libtorch-conv-nan (one process, no pipeline): whether libtorch's oneDNN convolution backward still reads
/// memory it did not write. Measured with libtorch 2.10.0 (TorchSharp 0.107.0) on this AVX-512 machine: a 3x3 (or
/// 5x5) Conv2d with 8 output channels returns a NaN input gradient in 45-50 of 50 backward passes once freed memory
/// holds NaN (it is fine with 16 or more channels, and with oneDNN switched off). Which bytes it reads depends on the
/// allocator's history, so in a real job it shows up at random: about one run in three of a width-8 ResNet, pipelined
/// or not. docs/troubleshooting.md says what users can do. Prints the counts; passes when no NaN was seen (a later
/// libtorch that fixes it), fails while the bug is there, so it is a check to run by hand, not a CI test.
/// </summary>
public static class LibtorchConvCheck
{
    public static bool Run(bool oneDnnOff)
    {
        if (oneDnnOff) OneDnn.Disable();
        bool clean = true;
        foreach (var (channels, size) in new[] { (8, 8), (8, 16), (16, 8), (32, 8) })
        {
            int withNaN = 0;
            for (int trial = 0; trial < 50; trial++)
            {
                PoisonFreedMemory();
                using var scope = NewDisposeScope();
                var conv = Conv2d(channels, channels, 3, padding: 1, bias: false);
                var x = randn(2, channels, size, size).requires_grad_();
                (conv.forward(x) * randn(2, channels, size, size)).sum().backward();
                if (x.grad!.isnan().any().item<bool>()) withNaN++;
            }
            Console.WriteLine($"3x3 convolution, {channels} channels, {size}x{size}, oneDNN {(oneDnnOff ? "off" : "on")}: NaN input gradient in {withNaN} of 50 backward passes");
            clean &= withNaN == 0;
        }
        return clean;
    }

    /// <summary>Freed blocks of many sizes that hold NaN: what a kernel reads if it reads memory it did not write.</summary>
    private static void PoisonFreedMemory()
    {
        var blocks = new List<Tensor>();
        for (long size = 8; size < 200_000; size = size * 5 / 4 + 8) blocks.Add(full(new long[] { size }, float.NaN, dtype: ScalarType.Float32));
        foreach (var block in blocks) block.Dispose();
    }

    /// <summary>at::globalContext().setUserEnabledMkldnn(false) (TorchSharp has no API for it), and NNPACK off too, which this CPU lacks.</summary>
    private static class OneDnn
    {
        [DllImport("torch_cpu", EntryPoint = "_ZN2at13globalContextEv")]
        private static extern IntPtr GlobalContext();

        [DllImport("torch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
        private static extern void SetUserEnabledMkldnn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

        [DllImport("torch_cpu", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
        private static extern void SetUserEnabledNNPACK(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

        public static void Disable()
        {
            SetUserEnabledMkldnn(GlobalContext(), false);
            SetUserEnabledNNPACK(GlobalContext(), false);
        }
    }
}
