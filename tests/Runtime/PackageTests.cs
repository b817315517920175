using System;
using System.IO;
using System.IO.Compression;
using System.Linq;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The NuGet packages as a user gets them: packed from the repository into a local folder feed, then a consumer
/// project outside the repository (no project references, no Directory.Build files) restores them from that feed,
/// builds (the generator runs from the package) and runs a 2-rank pipeline against its own model in one process.
/// </summary>
[Collection(nameof(ReleasePackingCollection))]
public class PackageTests(ITestOutputHelper log)
{
    private const string ConsumerProject = """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <Nullable>enable</Nullable>
            <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
            <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>
          </PropertyGroup>
          <ItemGroup>
            <PackageReference Include="Pippy.Runtime.Mpi" Version="$VERSION" />
          </ItemGroup>
        </Project>
        """;

    private const string ConsumerModel = """
        using Pippy;
        using TorchSharp.Modules;
        using static TorchSharp.torch;
        using static TorchSharp.torch.nn;

        namespace Consumer;

        [Pipeline(Microbatches = 2)]
        public sealed partial class Net : Module<Tensor, Tensor>
        {
            [SplitEnd] private readonly Linear first = Linear(8, 16);
            private readonly Linear second = Linear(16, 4);
            public Net() : base(nameof(Net)) { RegisterComponents(); }
            public override Tensor forward(Tensor x) => second.forward(functional.relu(first.forward(x)));
        }
        """;

    private const string ConsumerProgram = """
        using System;
        using Consumer;
        using Pippy.Runtime;
        using TorchSharp;
        using static TorchSharp.torch;

        using var mpi = PipelineEnvironment.Start(ref args);
        torch.manual_seed(3);
        var (x, y) = (randn(6, 8), randn(6, 4));
        torch.manual_seed(0);
        using var pipe = Net.Pipeline.Build(new Net(), mpi, new PipelineOptions { PrintPlan = false });
        var loss = pipe.Step(x, y, (o, t) => nn.functional.mse_loss(o, t, nn.Reduction.Sum)).item<float>();
        torch.manual_seed(0);
        var plain = nn.functional.mse_loss(new Net().forward(x), y, nn.Reduction.Sum).item<float>();
        bool same = Math.Abs(loss - plain) <= 1e-5 * Math.Abs(plain);
        if (mpi.Rank == 0) Console.WriteLine(same ? $"CONSUMER PASS loss {loss}" : $"CONSUMER FAIL {loss} vs {plain}");
        return same ? 0 : 1;
        """;

    [Fact]
    public void AConsumerBuildsAndRunsAgainstThePackedPackages()
    {
        string root = Path.Combine(Path.GetTempPath(), "pippy-package-" + Guid.NewGuid().ToString("N"));
        // A version of its own per run, so that no package cached by an earlier run is used.
        string version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        string feed = Path.Combine(root, "feed"), consumer = Path.Combine(root, "consumer");
        try
        {
            string repository = MpiLauncher.RepositoryRoot();
            foreach (var project in new[] { "src/Pippy.Attributes", "src/Pippy.Runtime.Mpi" })
                DotnetCli.Run(log, $"pack {Path.Combine(repository, project)} -c Release -o {feed} -p:Version={version} -nodeReuse:false", repository);

            using (var pippy = ZipFile.OpenRead(Path.Combine(feed, $"Pippy.{version}.nupkg")))
            {
                var entries = pippy.Entries.Select(e => e.FullName).ToArray();
                Assert.Contains("lib/netstandard2.0/Pippy.Attributes.dll", entries);
                Assert.Contains("analyzers/dotnet/cs/Pippy.Generators.dll", entries);
                Assert.Contains("analyzers/dotnet/cs/Pippy.Attributes.dll", entries);
            }
            using (var runtime = ZipFile.OpenRead(Path.Combine(feed, $"Pippy.Runtime.Mpi.{version}.nupkg")))
            {
                var entries = runtime.Entries.Select(e => e.FullName).ToArray();
                Assert.Contains("lib/net10.0/Pippy.Runtime.Mpi.dll", entries);
                Assert.Contains("buildTransitive/Pippy.Runtime.Mpi.targets", entries);
                using var nuspec = new StreamReader(runtime.Entries.Single(e => e.FullName.EndsWith(".nuspec")).Open());
                string text = nuspec.ReadToEnd();
                foreach (var dependency in new[] { "Pippy", "MPI.NET", "TorchSharp", "libtorch-cpu-linux-x64", "System.IO.Hashing" })
                    Assert.Contains($"<dependency id=\"{dependency}\"", text);
            }

            Directory.CreateDirectory(consumer);
            File.WriteAllText(Path.Combine(consumer, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="pippy-local" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(consumer, "Consumer.csproj"), ConsumerProject.Replace("$VERSION", version));
            File.WriteAllText(Path.Combine(consumer, "Net.cs"), ConsumerModel);
            File.WriteAllText(Path.Combine(consumer, "Program.cs"), ConsumerProgram);
            DotnetCli.Run(log, "build -nodeReuse:false", consumer);
            // The generator ran from the package's analyzers folder.
            Assert.NotEmpty(Directory.GetFiles(consumer, "Consumer.Net.Pipeline.g.cs", SearchOption.AllDirectories));

            var run = MpiLauncher.Start(2, Path.Combine(consumer, "bin", "Debug", "net10.0", "Consumer.dll"), "");
            log.WriteLine(run.Output + run.Errors);
            Assert.Equal(0, run.ExitCode);
            Assert.Contains("CONSUMER PASS", run.Output);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
