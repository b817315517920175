using System;
using Pippy.Runtime.Communication;

namespace Pippy.Runtime.Runner
{
    /// <summary>
    /// Where this rank sits in the job and the communicators that follow from it: consecutive ranks form a pipeline
    /// (rank = replica x pipeline ranks + pipeline rank); the same pipeline rank of every replica forms a data-parallel
    /// group; replicated parameters have a message space of their own beside the pipeline's. Every wait on them has the
    /// watchdog's timeout (<see cref="PipelineOptions.ReceiveTimeout"/>).
    /// </summary>
    internal sealed class PipelineTopology : IDisposable
    {
        public PipelineTopology(int pipelineRanks, int replicas, TimeSpan timeout)
        {
            World = MpiCommunicator.World(timeout);
            PipelineRanks = pipelineRanks;
            DataParallelSize = replicas;
            PipelineRank = World.Rank % pipelineRanks;
            DataParallelRank = World.Rank / pipelineRanks;
            Pipeline = World.Split(color: DataParallelRank, key: PipelineRank, "pipeline");
            DataParallel = World.Split(color: PipelineRank, key: DataParallelRank, "data-parallel");
            Replicas = Pipeline.Duplicate("replicated parameters");
        }

        /// <summary>Every rank of the job.</summary>
        public MpiCommunicator World { get; }

        /// <summary>This rank's pipeline, numbered by pipeline rank.</summary>
        public MpiCommunicator Pipeline { get; }

        /// <summary>The same pipeline rank of every replica, numbered by replica.</summary>
        public MpiCommunicator DataParallel { get; }

        /// <summary>The pipeline's ranks again, for the messages of replicated and tied parameters.</summary>
        public MpiCommunicator Replicas { get; }

        public int PipelineRank { get; }

        public int PipelineRanks { get; }

        public int DataParallelRank { get; }

        public int DataParallelSize { get; }

        public void Dispose()
        {
            Replicas.Dispose();
            Pipeline.Dispose();
            DataParallel.Dispose();
        }
    }
}
