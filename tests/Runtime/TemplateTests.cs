using System;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Pippy.Tests.Runtime;

/// <summary>
/// The `dotnet new` template as a new user meets it: Pippy, Pippy.Runtime.Mpi and Pippy.Templates packed into a local
/// folder feed with a version of their own, the template installed into a template cache of the test's own (so nothing
/// reaches the user's), a project made from it with a name, built against the feed, and run on as many ranks as its
/// README says; the loss it prints must fall.
/// </summary>
[Collection(nameof(ReleasePackingCollection))]
public class TemplateTests(ITestOutputHelper log)
{
    private static readonly string[] PackedProjects = ["src/Pippy.Attributes", "src/Pippy.Runtime.Mpi", "src/Pippy.Templates"];

    [Fact]
    public void ANewProjectFromTheTemplateBuildsAndTrainsOnTheRanksItsReadmeSays()
    {
        string root = Path.Combine(Path.GetTempPath(), "pippy-template-" + Guid.NewGuid().ToString("N"));
        // A version of its own per run, so that no package cached by an earlier run is used.
        string version = $"0.1.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        string feed = Path.Combine(root, "feed"), hive = Path.Combine(root, "template-cache"), project = Path.Combine(root, "MyTrainer");
        try
        {
            Directory.CreateDirectory(root);
            PackIntoFeed(MpiLauncher.RepositoryRoot(), root, feed, version);

            string templatePackage = Path.Combine(feed, $"Pippy.Templates.{version}.nupkg");
            using (var package = ZipFile.OpenRead(templatePackage))
            {
                var entries = package.Entries.Select(e => e.FullName).ToArray();
                Assert.Contains("content/templates/pippy-pipeline/.template.config/template.json", entries);
                Assert.DoesNotContain(entries, e => e.StartsWith("lib/", StringComparison.Ordinal) || e.Contains("/bin/") || e.Contains("/obj/"));
            }

            DotnetCli.Run(log, $"new install {templatePackage} --debug:custom-hive {hive}", root);
            DotnetCli.Run(log, $"new pippy-pipeline -n MyTrainer -o {project} --no-update-check --debug:custom-hive {hive}", root);

            // -n renamed the project, and it references the runtime at exactly the template package's version.
            string projectFile = File.ReadAllText(Path.Combine(project, "MyTrainer.csproj"));
            Assert.Contains($"<PackageReference Include=\"Pippy.Runtime.Mpi\" Version=\"{version}\" />", projectFile);
            Assert.DoesNotContain(Directory.GetFiles(project), f => File.ReadAllText(f).Contains("PippyTrainer"));

            string readme = File.ReadAllText(Path.Combine(project, "README.md"));
            var command = Regex.Match(readme, @"mpiexec -n (\d+) dotnet run --no-build");
            Assert.True(command.Success, "README.md gives no `mpiexec -n N dotnet run --no-build` command");
            int ranks = int.Parse(command.Groups[1].Value, CultureInfo.InvariantCulture);

            File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="pippy-local" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                </configuration>
                """);
            DotnetCli.Run(log, "build -nodeReuse:false", project);

            string checkpoint = Path.Combine(root, "checkpoint");
            var run = MpiLauncher.Start(ranks, Path.Combine(project, "bin", "Debug", "net10.0", "MyTrainer.dll"), $"--checkpoint {checkpoint}");
            log.WriteLine(run.Output + run.Errors);
            Assert.Equal(0, run.ExitCode);
            Assert.Contains($"Regressor: {ranks} stages on {ranks} ranks", run.Output);
            var losses = Regex.Matches(run.Output, @"^step +\d+  loss (\d+\.\d+)$", RegexOptions.Multiline)
                .Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToArray();
            Assert.True(losses.Length >= 2, "fewer than two loss lines printed");
            Assert.True(losses[^1] < losses[0] / 4, $"the loss did not fall: {string.Join(", ", losses)}");
            Assert.True(File.Exists(Path.Combine(checkpoint, "checkpoint.json")), "no checkpoint written");
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>
    /// Packs the three packages in one build (a solution of just them, outside the repository), which restores and
    /// evaluates once instead of once per package.
    /// </summary>
    private void PackIntoFeed(string repository, string root, string feed, string version)
    {
        string solution = Path.Combine(root, "packages.slnx");
        // The generator is in the solution too (not packed itself): a project reference outside a solution's build
        // is built in its default configuration, Debug, and Pippy.Attributes' pack then misses its Release output.
        var projects = PackedProjects.Append("src/Pippy.Generators").Select(p =>
            $"  <Project Path=\"{Path.GetRelativePath(root, Path.Combine(repository, p, Path.GetFileName(p) + ".csproj"))}\" />");
        File.WriteAllText(solution, $"<Solution>\n{string.Join("\n", projects)}\n</Solution>\n");
        DotnetCli.Run(log, $"pack {solution} -c Release -p:PackageOutputPath={feed}/ -p:Version={version} -nodeReuse:false", root);
    }
}
