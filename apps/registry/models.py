"""What vendors register: chips with declared specifications, the hardware targets they run
on, model artifacts, and the runner hosts that execute suites on a target's device."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Organization

# Declared dense peak throughput, one column per precision. Keys are the API's dtype names.
PEAK_FIELDS: dict[str, str] = {
    "fp32": "peak_fp32_tflops",
    "tf32": "peak_tf32_tflops",
    "bf16": "peak_bf16_tflops",
    "fp16": "peak_fp16_tflops",
    "fp8": "peak_fp8_tflops",
    "int8": "peak_int8_tops",
}
# The dtype whose GEMM the performance suite times to measure each declared peak (AIA 1.2 measures
# every declared one). tf32 has none: no benchmark of the suite computes in TF32.
PEAK_MEASURED_DTYPE: dict[str, str] = {
    "fp32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp8": "float8_e4m3fn",
    "int8": "int8",
}
# Bit length of each precision, for export-control TPP (= 2 x MacTOPS x bit length).
PEAK_BIT_LENGTH: dict[str, int] = {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8}

# Bounds that no real accelerator reaches: a wafer-scale part is ~46,000 mm2 and ~125 PFLOP/s.
MAX_PEAK_TFLOPS = 1_000_000
country_code = RegexValidator(r"^[A-Z]{2}$", _("Use an ISO 3166-1 alpha-2 code such as US, TW or DE."))
currency_code = RegexValidator(r"^[A-Z]{3}$", _("Use an ISO 4217 code such as USD or EUR."))
slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
    _("Lower-case letters, digits and inner hyphens, at most 64 characters."),
)
backend_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{1,31}$", _("A backend is a lower-case identifier such as cpu, cuda, npu.")
)


def _peak_field(label: str) -> models.FloatField:
    return models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_PEAK_TFLOPS)],
        help_text=f"Declared dense {label} peak",
    )


class Chip(models.Model):
    """An accelerator product with its vendor's declared specifications."""

    vendor = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="chips")
    sku = models.CharField(max_length=64, validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")])
    name = models.CharField(max_length=200)
    architecture = models.CharField(max_length=100, blank=True)
    process_node_nm = models.FloatField(validators=[MinValueValidator(0.5), MaxValueValidator(1000)])
    # Nullable: some vendors publish no single die area (chiplets) or no bandwidth figure.
    die_area_mm2 = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(100_000)]
    )
    memory_gib = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(1_000_000)])
    memory_bandwidth_gbs = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1_000_000)]
    )
    tdp_w = models.FloatField(validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    interconnect_bandwidth_gbs = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(1_000_000)]
    )
    peak_fp32_tflops = _peak_field("fp32 TFLOP/s")
    peak_tf32_tflops = _peak_field("tf32 TFLOP/s")
    peak_bf16_tflops = _peak_field("bf16 TFLOP/s")
    peak_fp16_tflops = _peak_field("fp16 TFLOP/s")
    peak_fp8_tflops = _peak_field("fp8 TFLOP/s")
    peak_int8_tops = _peak_field("int8 TOP/s")
    data_center = models.BooleanField(default=True, help_text="Designed or marketed for data centers")
    fab_country = models.CharField(max_length=2, validators=[country_code])
    assembly_country = models.CharField(max_length=2, validators=[country_code])
    domestic_content_pct = models.FloatField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    list_price = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    currency = models.CharField(max_length=3, blank=True, validators=[currency_code])
    spec_source = models.CharField(max_length=500, help_text="Where the declared figures come from")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vendor__name", "sku"]
        constraints = [
            # Per vendor and regardless of case: "ACME-1" and "acme-1" are one product of one vendor.
            # Another vendor's SKU is its own namespace, never refused, so never revealed.
            models.UniqueConstraint("vendor", Lower("sku"), name="chip_sku_unique_per_vendor"),
        ]
        # sku: the public registry sorts certificates by chip SKU (a sorted index scan instead of
        # sorting the whole join: 35 ms -> under 1 ms over 10,000 certificates).
        indexes = [
            models.Index(fields=["name"]),
            models.Index(fields=["sku"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.sku}"

    def declared_peaks(self) -> dict[str, float]:
        """The declared peaks that are set, keyed by dtype name (fp32, bf16, ...)."""
        return {
            key: value for key, field in PEAK_FIELDS.items() if (value := getattr(self, field)) is not None
        }


class Backend(models.TextChoices):
    """Backends PyTorch drives out of the box; plugins add their own names (free text is accepted)."""

    CPU = "cpu", "CPU"
    CUDA = "cuda", "CUDA (NVIDIA)"
    ROCM = "rocm", "ROCm (AMD)"
    XPU = "xpu", "XPU (Intel)"
    MPS = "mps", "MPS (Apple)"
    NPU = "npu", "NPU (Ascend, torch_npu)"
    MLU = "mlu", "MLU (Cambricon)"


class HardwareTarget(models.Model):
    """An operating environment: a chip plus the software stack it is certified with."""

    chip = models.ForeignKey(Chip, on_delete=models.PROTECT, related_name="targets")
    # Always the chip's vendor (set by the registry services): slugs are unique per vendor, so one
    # vendor's choice of slug neither blocks nor reveals another's.
    vendor = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="targets")
    slug = models.CharField(max_length=64, validators=[slug_validator])
    backend = models.CharField(max_length=32, validators=[backend_validator])
    device_count = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1024)]
    )
    # How the target's devices talk to each other, as the vendor declares it; the collectives suite
    # measures it (bus bandwidth) on device_count devices.
    interconnect = models.CharField(
        max_length=200,
        blank=True,
        help_text="How the devices are connected, e.g. NVLink 4 (18 links), HCCS, PCIe 5.0 x16; empty for one device",
    )
    driver_version = models.CharField(max_length=100, blank=True)
    runtime_version = models.CharField(max_length=100, blank=True, help_text="CUDA toolkit, ROCm, CANN, ...")
    torch_version = models.CharField(max_length=100)
    plugin_versions = models.JSONField(default=dict, blank=True, help_text="Backend plugin name -> version")
    # What identifies the device itself, as the runner reads it (runners/backends: device_identity):
    # name, and where readable pci_bus_id, uuid, serial. Evidence from another device is refused.
    device_identity = models.JSONField(
        default=dict,
        blank=True,
        help_text="Device identity the runner must read: name, pci_bus_id, uuid, serial (each optional)",
    )
    host_cpu = models.CharField(max_length=200, blank=True)
    host_memory_gib = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(1_000_000)]
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "slug"], name="target_slug_unique_per_vendor")
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def reference(self) -> str:
        """`<vendor slug>/<target slug>`: names the target across vendors (the authority's runner bindings)."""
        return f"{self.vendor.slug}/{self.slug}"

    @property
    def queue(self) -> str:
        """The Celery queue the target's runner workers consume: `target.<vendor slug>.<target slug>`."""
        return f"target.{self.vendor.slug}.{self.slug}"


class ModelTask(models.TextChoices):
    LLM_DECODE = "llm-decode", _("LLM decode")
    TEXT_EMBEDDING = "text-embedding", _("Text embedding")
    IMAGE_CLASSIFICATION = "image-classification", _("Image classification")


class Architecture(models.TextChoices):
    """Architecture ids the runners implement (runners/models); weights are data for one of these."""

    BERT_ENCODER = "bert-encoder", _("BERT-style encoder")
    LLAMA_DECODER = "llama-decoder", _("Llama-style decoder")
    DEEPSEEK_V3 = "deepseek-v3", _("DeepSeek-V3-style decoder (MLA, MoE, MTP)")
    RESNET_CNN = "resnet-cnn", _("ResNet-style CNN")


def _weights_path(instance: ModelArtifact, filename: str) -> str:
    # Content-addressed: the client's file name never reaches the file system.
    return f"models/{instance.weights_sha256[:2]}/{instance.weights_sha256}.safetensors"


class ModelArtifact(models.Model):
    """A model to certify with: safetensors weights (data, never code) for a known architecture."""

    owner = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="model_artifacts")
    name = models.CharField(max_length=100, validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")])
    version = models.CharField(max_length=50, validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._+\-]*$")])
    task = models.CharField(max_length=32, choices=ModelTask.choices)
    architecture = models.CharField(max_length=32, choices=Architecture.choices)
    config = models.JSONField(default=dict)
    weights = models.FileField(upload_to=_weights_path, max_length=300)
    weights_sha256 = models.CharField(max_length=64, db_index=True)
    weights_size = models.BigIntegerField()
    tensor_count = models.PositiveIntegerField(default=0)
    license = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner__name", "name", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name", "version"], name="model_version_unique_per_owner"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


class RunnerStatus(models.TextChoices):
    PENDING = "pending", _("Registered, never seen")
    ONLINE = "online", _("Online")
    OFFLINE = "offline", _("Offline (heartbeat stale)")
    DISABLED = "disabled", _("Disabled by the authority")


class Runner(models.Model):
    """A host that executes suites on the device of the targets it serves, signing what it sends."""

    name = models.CharField(max_length=100, unique=True, validators=[slug_validator])
    targets = models.ManyToManyField(HardwareTarget, related_name="runners", blank=True)
    public_key = models.TextField(help_text="Ed25519 public key, PEM")
    key_id = models.CharField(max_length=64, unique=True, help_text="sha256 of the raw public key, hex")
    status = models.CharField(max_length=16, choices=RunnerStatus.choices, default=RunnerStatus.PENDING)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_fingerprint = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
