using Pippy;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ParityApp.Models;

/// <summary>
/// A variational autoencoder written with helper methods, as VAEs usually are: forward calls Encode, Reparameterize
/// and Decode, and never names a submodule itself. The generator follows those calls: [SplitEnd] on fc22, used inside
/// Encode, ends stage 0 after the statement that calls Encode; Decode's fc3 and fc4 belong to stage 1; 'norm', used
/// through Act by both Encode and Decode, is replicated on both stages (PIPPY0008). The noise is forward's second
/// input, so the pipeline and the plain model draw the same sample.
/// </summary>
[Pipeline(Microbatches = 2)]
public sealed partial class Vae : Module<Tensor, Tensor, (Tensor, Tensor, Tensor)>
{
    private readonly Linear fc1;
    private readonly Linear fc21;
    [SplitEnd] private readonly Linear fc22;
    private readonly Linear fc3;
    private readonly Linear fc4;
    private readonly LayerNorm norm;

    public Vae(int features = 12, int hidden = 10, int latent = 4) : base(nameof(Vae))
    {
        fc1 = Linear(features, hidden);
        fc21 = Linear(hidden, latent);
        fc22 = Linear(hidden, latent);
        fc3 = Linear(latent, hidden);
        fc4 = Linear(hidden, features);
        norm = LayerNorm(hidden);
        RegisterComponents();
    }

    private Tensor Act(Tensor h) => norm.forward(h).relu();

    private (Tensor Mu, Tensor LogVar) Encode(Tensor x)
    {
        var h = Act(fc1.forward(x));
        return (fc21.forward(h), fc22.forward(h));
    }

    private static Tensor Reparameterize(Tensor mu, Tensor logvar, Tensor eps) => mu + eps * exp(0.5 * logvar);

    private Tensor Decode(Tensor z) => sigmoid(fc4.forward(Act(fc3.forward(z))));

    public override (Tensor, Tensor, Tensor) forward(Tensor x, Tensor eps)
    {
        var (mu, logvar) = Encode(x);
        var z = Reparameterize(mu, logvar, eps);
        return (Decode(z), mu, logvar);
    }
}
