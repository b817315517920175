using System;
using System.IO;
using System.Linq;
using Pippy.Runtime.Materialization;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Pippy.Tests.Runtime;

/// <summary>LazyModel.Construct changes torch's process-wide default device for a moment: these tests run alone.</summary>
[CollectionDefinition(nameof(DefaultDeviceCollection), DisableParallelization = true)]
public sealed class DefaultDeviceCollection;

/// <summary>
/// Models built on the meta device (LazyModel) and given memory and values later, in one process: the layers'
/// defaults, values that depend only on the seed and the tensor's name, ties, custom tensors, and model files.
/// </summary>
[Collection(nameof(DefaultDeviceCollection))]
public class LazyModelTests
{
    /// <summary>Embedding, two blocks (norm, linear, a parameter and a buffer of its own), a norm and a tied head.</summary>
    private sealed class Lm : Module<Tensor, Tensor>
    {
        public readonly Embedding tokens;
        public readonly ModuleList<Block> blocks;
        public readonly BatchNorm1d norm;
        public readonly Linear head;

        public Lm() : base(nameof(Lm))
        {
            tokens = Embedding(20, 8);
            blocks = new ModuleList<Block>(new Block(), new Block());
            norm = BatchNorm1d(8);
            head = Linear(8, 20, hasBias: false);
            head.weight = tokens.weight!;
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids)
        {
            var x = tokens.forward(ids);
            foreach (var block in blocks) x = block.forward(x);
            return head.forward(norm.forward(x.transpose(1, 2)).transpose(1, 2));
        }
    }

    private sealed class Block : Module<Tensor, Tensor>
    {
        public readonly LayerNorm layerNorm = LayerNorm(8);
        public readonly Linear linear = Linear(8, 8);
        public Parameter scale = Parameter(ones(8));
        public Tensor offset = full(8, 0.5f);

        public Block() : base(nameof(Block)) { RegisterComponents(); }

        public override Tensor forward(Tensor x) => x + linear.forward(layerNorm.forward(x)) * scale + offset;
    }

    /// <summary>Gives the blocks' own tensors values as their constructor does; the layers' defaults do the rest.</summary>
    private static readonly TensorInitializer BlockTensors = (name, owner, tensor) =>
    {
        if (owner is not Block) return false;
        if (name.EndsWith(".scale", StringComparison.Ordinal)) tensor.fill_(1);
        else if (name.EndsWith(".offset", StringComparison.Ordinal)) tensor.fill_(0.5);
        else return false;
        return true;
    };

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.allclose(b, rtol: 0, atol: 0);

    private static Lm Lazy() => LazyModel.Construct(() => new Lm());

    [Fact]
    public void ConstructGivesNoTensorMemoryAndRestoresTheDefaultDevice()
    {
        var model = Lazy();
        Assert.True(LazyModel.IsLazy(model));
        Assert.All(model.parameters(), p => Assert.True(p.is_meta));
        Assert.All(model.buffers(), b => Assert.True(b.is_meta));
        Assert.Equal(DeviceType.CPU, zeros(1).device_type);
        // Shapes are known, so stages can still be balanced by parameter count.
        // (TorchSharp lists the tied weight under both its names.)
        Assert.Equal(2 * 20 * 8 + 2 * (8 + 8 + 64 + 8 + 8) + 8 + 8, model.parameters().Sum(p => p.NumberOfElements));
    }

    [Fact]
    public void MaterializeGivesEachLayerItsConstructorsDefaultsAndKeepsTheTie()
    {
        var model = Lazy();
        var tensors = LazyModel.Materialize(model, WeightInitialization.Seeded(3, BlockTensors));
        Assert.False(LazyModel.IsLazy(model));
        // The tied weight is one tensor under two names, given memory once.
        var tied = tensors.Single(t => t.Name == "tokens.weight");
        Assert.Equal(new[] { "tokens.weight", "head.weight" }, tied.Names);
        Assert.Equal(Pippy.Runtime.Native.TorchNative.DataPointer(model.tokens.weight!), Pippy.Runtime.Native.TorchNative.DataPointer(model.head.weight));
        var block = model.blocks[0];
        Assert.True(block.layerNorm.weight!.eq(1).all().item<bool>());
        Assert.True(block.layerNorm.bias!.eq(0).all().item<bool>());
        Assert.True(model.norm.running_var!.eq(1).all().item<bool>() && model.norm.running_mean!.eq(0).all().item<bool>());
        // kaiming_uniform_(a = sqrt 5) and the bias are both bounded by 1/sqrt(fan_in) = 1/sqrt 8, and not constant.
        double bound = 1 / Math.Sqrt(8);
        foreach (var t in new[] { block.linear.weight, block.linear.bias! })
        {
            Assert.True(t.abs().max().item<float>() <= bound + 1e-6);
            Assert.True(t.std().item<float>() > 0.05);
        }
        Assert.InRange(model.tokens.weight!.std().item<float>(), 0.6, 1.4); // normal(0, 1)
        // The blocks' own tensors came from the custom initializer, and the fields forward reads were replaced too.
        Assert.True(block.scale.eq(1).all().item<bool>() && !block.scale.is_meta);
        Assert.True(block.offset.eq(0.5).all().item<bool>() && !block.offset.is_meta);
        Assert.Equal(new long[] { 2, 5, 20 }, model.forward(tensor(new long[,] { { 1, 2, 3, 4, 5 }, { 6, 7, 8, 9, 10 } })).shape);
    }

    [Fact]
    public void ValuesDependOnlyOnTheSeedAndTheName()
    {
        var whole = Lazy();
        LazyModel.Materialize(whole, WeightInitialization.Seeded(3, BlockTensors));
        // As a pipeline rank does: only a part, under the names it has in the model.
        var part = Lazy();
        LazyModel.Materialize(new[] { ("blocks", (Module)part.blocks) }, WeightInitialization.Seeded(3, BlockTensors));
        Assert.True(LazyModel.IsLazy(part.tokens) && !LazyModel.IsLazy(part.blocks));
        Assert.True(Same(part.blocks[1].linear.weight, whole.blocks[1].linear.weight));
        Assert.True(Same(part.blocks[0].linear.bias!, whole.blocks[0].linear.bias!));
        Assert.False(Same(whole.blocks[0].linear.weight, whole.blocks[1].linear.weight));
        var other = Lazy();
        LazyModel.Materialize(other, WeightInitialization.Seeded(4, BlockTensors));
        Assert.False(Same(other.blocks[1].linear.weight, whole.blocks[1].linear.weight));
    }

    [Fact]
    public void MaterializingLeavesTorchsRandomNumbersWhereTheyWere()
    {
        var model = Lazy(); // (TorchSharp's native Embedding draws its values while it is built, even on meta)
        manual_seed(11);
        var expected = randn(5);
        manual_seed(11);
        LazyModel.Materialize(model, WeightInitialization.Seeded(3, BlockTensors));
        Assert.True(Same(randn(5), expected));
    }

    [Fact]
    public void TensorsWithoutKnownDefaultsAreNamedWithTheFix()
    {
        var error = Assert.Throws<InvalidOperationException>(() => LazyModel.Materialize(Lazy(), WeightInitialization.Seeded(3)));
        Assert.Contains("'blocks.0.scale' (Block.scale)", error.Message);
        Assert.Contains("'blocks.0.offset' (Block.offset)", error.Message);
        Assert.Contains("TensorInitializer", error.Message);
    }

    [Fact]
    public void FromFileReadsOnlyTheTensorsAskedForAndNamesMismatches()
    {
        string path = Path.Combine(Path.GetTempPath(), $"pippy-lazy-{Guid.NewGuid():N}.bin");
        try
        {
            manual_seed(5);
            var saved = new Lm();
            saved.save(path);
            var part = Lazy();
            LazyModel.Materialize(new[] { ("blocks", (Module)part.blocks) }, WeightInitialization.FromFile(path));
            Assert.True(LazyModel.IsLazy(part.tokens));
            Assert.True(Same(part.blocks[1].linear.weight, saved.blocks[1].linear.weight));
            Assert.True(Same(part.blocks[0].offset, saved.blocks[0].offset));
            var whole = Lazy();
            LazyModel.Materialize(whole, WeightInitialization.FromFile(path));
            var ids = tensor(new long[,] { { 1, 2, 3 } });
            whole.eval(); saved.eval();
            Assert.True(Same(whole.forward(ids), saved.forward(ids)));

            var wider = LazyModel.Construct(() => Embedding(20, 9));
            var shape = Assert.Throws<InvalidDataException>(() => LazyModel.Materialize(new[] { ("tokens", (Module)wider) }, WeightInitialization.FromFile(path)));
            Assert.Contains("'tokens.weight' as Float32 [20, 8], but the model's is Float32 [20, 9]", shape.Message);
            var stranger = LazyModel.Construct(() => Linear(8, 8));
            var missing = Assert.Throws<InvalidDataException>(() => LazyModel.Materialize(new[] { ("probe", (Module)stranger) }, WeightInitialization.FromFile(path)));
            Assert.Contains("has no 'probe.weight', 'probe.bias'", missing.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
