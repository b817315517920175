using System;
using System.Linq;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Pippy.Runtime.Materialization
{
    /// <summary>
    /// The values TorchSharp's own layer constructors give their parameters and buffers, applied to a tensor that was
    /// created on the meta device (where the constructor's initialization did nothing): Linear, Bilinear, the
    /// convolutions, Embedding and the normalization layers. Random draws use torch's default generator, which the
    /// caller seeds per tensor.
    /// </summary>
    internal static class LayerDefaults
    {
        private static readonly double Sqrt5 = Math.Sqrt(5);

        /// <summary>Initializes <paramref name="tensor"/> as its layer's constructor would; false when the layer or the name is not known.</summary>
        public static bool TryInitialize(MaterializedTensor tensor)
        {
            var value = tensor.Tensor;
            string layer = tensor.Owner.GetType().Name;
            string name = tensor.LocalName;
            using var noGrad = no_grad();
            if (tensor.Owner is Linear || layer.StartsWith("Conv", StringComparison.Ordinal))
            {
                // kaiming_uniform_(a = sqrt 5) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias.
                if (name == "weight") { nn.init.kaiming_uniform_(value, Sqrt5); return true; }
                if (name == "bias") { Uniform(value, FanIn(WeightOf(tensor))); return true; }
                return false;
            }
            if (layer == "Bilinear")
            {
                if (name is "weight" or "bias") { Uniform(value, WeightOf(tensor).shape[1]); return true; }
                return false;
            }
            if (layer is "Embedding" or "EmbeddingBag")
            {
                if (name == "weight") { nn.init.normal_(value); return true; }
                return false;
            }
            if (layer.Contains("Norm", StringComparison.Ordinal))
            {
                switch (name)
                {
                    case "weight": case "running_var": nn.init.ones_(value); return true;
                    case "bias": case "running_mean": case "num_batches_tracked": nn.init.zeros_(value); return true;
                    default: return false;
                }
            }
            return false;
        }

        private static Tensor WeightOf(MaterializedTensor tensor) =>
            tensor.Owner.named_parameters(recurse: false).FirstOrDefault(p => p.name == "weight").parameter
            ?? throw new InvalidOperationException($"'{tensor.Name}': its {tensor.Owner.GetType().Name} has no weight to take the fan-in from.");

        /// <summary>Inputs per output: the weight's second dimension times its receptive field (as torch computes it).</summary>
        private static long FanIn(Tensor weight) => weight.shape.Length < 2 ? weight.shape[0] : weight.shape.Skip(1).Aggregate(1L, (a, b) => a * b);

        private static void Uniform(Tensor value, long fanIn)
        {
            double bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
            nn.init.uniform_(value, -bound, bound);
        }
    }
}
