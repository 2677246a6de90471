//! `repro data fetch` and `repro data subset`: get a dataset, and write the long-tailed
//! subset a run would train on without training.
use arbor_models::config::{DatasetKind, RunConfig};
use arbor_models::data::fetch::{fetch, ArchiveSpec, Fetched, AUTHORS_URL};
use arbor_models::data::hints::DEFAULT_DATA_DIR;
use arbor_models::train::source::longtail_of;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download, verify (MD5) and unpack CIFAR's binary distribution.
    Fetch {
        /// cifar10 or cifar100
        name: String,
        /// Folder to unpack into (the CIFAR datasets' default --data).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        dir: PathBuf,
        /// Base URL to download from instead of the authors' page.
        #[arg(long, default_value = AUTHORS_URL)]
        mirror: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Write the long-tailed subset (indices into the training set) to a JSON file.
    Subset {
        /// cifar10-lt, cifar100-lt or folder
        #[arg(long)]
        dataset: String,
        /// Data folder (default ./data for CIFAR).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Imbalance factor.
        #[arg(long)]
        imb: u32,
        /// numpy seed of the subset (0: the reference's).
        #[arg(long, default_value_t = 0)]
        subset_seed: u32,
        /// Where to write the subset.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: DataCommand) -> Result<(), String> {
    match cmd {
        DataCommand::Fetch {
            name,
            dir,
            mirror,
            quiet,
        } => {
            let spec = ArchiveSpec::cifar(&name).map_err(|e| e.to_string())?;
            match fetch(&spec, &mirror, &dir, !quiet).map_err(|e| e.to_string())? {
                Fetched::AlreadyPresent(path) => {
                    println!("{} is already present and verified", path.display())
                }
                Fetched::Unpacked(path) => {
                    println!("{name}: verified and unpacked into {}", path.display())
                }
            }
            Ok(())
        }
        DataCommand::Subset {
            dataset,
            data,
            imb,
            subset_seed,
            out,
        } => {
            let dataset: DatasetKind = dataset.parse().map_err(|e| format!("--dataset: {e}"))?;
            let cfg = RunConfig {
                dataset,
                data,
                imb,
                subset_seed,
                ..RunConfig::default()
            };
            cfg.validate()?;
            let subset = longtail_of(&cfg).map_err(|e| e.to_string())?;
            subset.save(&out).map_err(|e| e.to_string())?;
            println!(
                "{} images ({} per class, largest first) -> {}",
                subset.indices.len(),
                subset
                    .counts
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                out.display()
            );
            Ok(())
        }
    }
}
