using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// Corpus: a word-level LSTM language model in the style of the classic word_language_model example: an embedding,
/// dropout, a two-layer LSTM (with dropout between its layers), dropout again and a linear decoder over the
/// vocabulary. The Dropout module is used in two stages (replicated, PIPPY0008; it has no parameters). Dropout masks
/// are drawn per rank and per microbatch (docs/annotations.md, "Dropout and random numbers"), so the parity check runs
/// both models in eval mode, where dropout is the identity; the model keeps p = 0.2 as a user writes it.
/// Annotation: [Pipeline], partial, [SplitEnd] on the embedding and the LSTM: 3 stages.
/// </summary>
[Pipeline(Microbatches = 4)]
public sealed partial class CorpusLstmLm : Module<Tensor, Tensor>
{
    [SplitEnd] private readonly Embedding encoder;
    [SplitEnd] private readonly LSTM rnn;
    private readonly Dropout drop;
    private readonly Linear decoder;

    public CorpusLstmLm(int vocabulary = 24, int embedding = 8, int hidden = 12, int layers = 2, double dropout = 0.2) : base(nameof(CorpusLstmLm))
    {
        encoder = Embedding(vocabulary, embedding);
        rnn = LSTM(embedding, hidden, numLayers: layers, batchFirst: true, dropout: dropout);
        drop = Dropout(dropout);
        decoder = Linear(hidden, vocabulary);
        RegisterComponents();
    }

    /// <param name="tokens">[batch, time] token ids</param>
    /// <returns>[batch, time, vocabulary] logits</returns>
    public override Tensor forward(Tensor tokens)
    {
        var emb = drop.forward(encoder.forward(tokens));
        var (output, _, _) = rnn.forward(emb);
        output = drop.forward(output);
        return decoder.forward(output);
    }
}
