using System;
using Pippy;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Corpus: a small BERT-style sentence classifier with BERT's four inputs (token ids, token type ids, attention mask,
/// position ids): word + position + token type embeddings and LayerNorm, two post-norm encoder layers with an additive
/// attention mask, a tanh pooler over the first token and a classifier. forward opens a dispose scope and hands its
/// result out with <c>scope.MoveToOuter</c>, as docs/annotations.md shows. Annotation: [Pipeline], partial,
/// [SplitEnd] on the embedding LayerNorm and the first encoder layer: 3 stages.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class CorpusBert : Module<Tensor, Tensor, Tensor, Tensor, Tensor>
{
    private readonly Embedding words;
    private readonly Embedding positions;
    private readonly Embedding tokenTypes;
    [SplitEnd] private readonly LayerNorm embeddingNorm;
    [SplitEnd] private readonly BertLayer layer0;
    private readonly BertLayer layer1;
    private readonly Linear pooler;
    private readonly Linear classifier;

    public CorpusBert(int vocabulary = 40, int maxPositions = 16, int dim = 16, int heads = 2, int classes = 3) : base(nameof(CorpusBert))
    {
        words = Embedding(vocabulary, dim);
        positions = Embedding(maxPositions, dim);
        tokenTypes = Embedding(2, dim);
        embeddingNorm = LayerNorm(dim);
        layer0 = new BertLayer(dim, heads, 2 * dim);
        layer1 = new BertLayer(dim, heads, 2 * dim);
        pooler = Linear(dim, dim);
        classifier = Linear(dim, classes);
        RegisterComponents();
    }

    /// <param name="inputIds">[batch, time] token ids</param>
    /// <param name="tokenTypeIds">[batch, time] 0 for the first segment, 1 for the second</param>
    /// <param name="attentionMask">[batch, time] 1 for a real token, 0 for padding</param>
    /// <param name="positionIds">[batch, time] the position of each token</param>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, Tensor positionIds)
    {
        using var scope = torch.NewDisposeScope();
        var extendedMask = (1.0 - attentionMask.unsqueeze(1).unsqueeze(2).to_type(ScalarType.Float32)) * -10000.0;
        var embeddings = words.forward(inputIds) + positions.forward(positionIds) + tokenTypes.forward(tokenTypeIds);
        var hidden = embeddingNorm.forward(embeddings);
        hidden = layer0.forward(hidden, extendedMask);
        hidden = layer1.forward(hidden, extendedMask);
        var pooled = pooler.forward(hidden.select(1, 0)).tanh();
        return scope.MoveToOuter(classifier.forward(pooled));
    }
}

/// <summary>Post-norm self-attention and a GELU feed-forward, each with a residual, as in BERT.</summary>
public sealed class BertLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly int heads;
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly Linear output;
    private readonly LayerNorm attentionNorm;
    private readonly Linear intermediate;
    private readonly Linear feedForwardOut;
    private readonly LayerNorm outputNorm;

    public BertLayer(int dim, int heads, int intermediateSize) : base(nameof(BertLayer))
    {
        this.heads = heads;
        query = Linear(dim, dim);
        key = Linear(dim, dim);
        value = Linear(dim, dim);
        output = Linear(dim, dim);
        attentionNorm = LayerNorm(dim);
        intermediate = Linear(dim, intermediateSize);
        feedForwardOut = Linear(intermediateSize, dim);
        outputNorm = LayerNorm(dim);
        RegisterComponents();
    }

    /// <param name="x">[batch, time, dim]</param>
    /// <param name="mask">additive, [batch, 1, 1, time]</param>
    public override Tensor forward(Tensor x, Tensor mask)
    {
        long batch = x.shape[0], time = x.shape[1], dim = x.shape[2], headDim = dim / heads;
        Tensor Heads(Tensor t) => t.view(batch, time, heads, headDim).transpose(1, 2);
        var q = Heads(query.forward(x));
        var k = Heads(key.forward(x));
        var v = Heads(value.forward(x));
        var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim) + mask;
        var context = scores.softmax(-1).matmul(v).transpose(1, 2).reshape(batch, time, dim);
        var attended = attentionNorm.forward(x + output.forward(context));
        var feedForward = feedForwardOut.forward(functional.gelu(intermediate.forward(attended)));
        return outputNorm.forward(attended + feedForward);
    }
}
