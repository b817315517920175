using static TorchSharp.torch;

namespace Bert;

/// <summary>
/// BERT's masked-language-model objective on characters: about 40 % of the real (not padding) positions are chosen
/// (BERT chose 15 %; a character carries less than a word piece, and 40 % gives 2.7 times the targets per step: from
/// 15 to 40 % the accuracy after the default run rose from 22 to 24 % without the distance bias);
/// of those, 80 % are replaced by the mask id, 10 % by a random character and 10 % left as they are, and the model
/// must give the original character at each chosen position. The other positions' targets are <see cref="Ignored"/>,
/// so the loss counts only the chosen ones.
/// </summary>
public static class MaskedCharacters
{
    /// <summary>cross_entropy's default ignore_index: a target that contributes nothing to the loss.</summary>
    public const long Ignored = -100;
    public const double ChosenShare = 0.4;

    /// <summary>The corrupted input and the targets, drawn from a generator seeded by <paramref name="seed"/> (the same on every rank).</summary>
    public static (Tensor Input, Tensor Target) Corrupt(Tensor ids, Tensor real, int vocabulary, ulong seed)
    {
        var generator = new Generator(seed);
        var chosen = rand(ids.shape, generator: generator).lt(ChosenShare).logical_and(real.gt(0));
        var how = rand(ids.shape, generator: generator);
        var randomCharacters = randint(Sentences.Mask + 1, vocabulary, ids.shape, generator: generator);
        var input = where(chosen.logical_and(how.lt(0.8)), full_like(ids, Sentences.Mask),
                    where(chosen.logical_and(how.lt(0.9)), randomCharacters, ids));
        var target = where(chosen, ids, full_like(ids, Ignored));
        return (input, target);
    }

    /// <summary>Positions the loss counts in <paramref name="target"/>.</summary>
    public static long Count(Tensor target) => target.ne(Ignored).sum().item<long>();

    /// <summary>
    /// The summed cross-entropy of the chosen positions divided by <paramref name="chosenInBatch"/>, the chosen
    /// positions of the whole batch: summed over microbatches (as Step does) it is the batch's mean, exactly.
    /// </summary>
    public static Tensor Loss(Tensor logits, Tensor target, long chosenInBatch) =>
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), target.reshape(-1), ignore_index: Ignored, reduction: nn.Reduction.Sum) / chosenInBatch;
}
