from rest_framework import serializers

from apps.accounts.models import ApiToken, Membership, Organization


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "kind", "country", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role"]


class OrganizationMeSerializer(serializers.Serializer):
    """The caller's organization, their role, and the members they may know about."""

    organization = OrganizationSerializer()
    username = serializers.CharField()
    role = serializers.CharField()
    members = MemberSerializer(many=True)


class ApiTokenSerializer(serializers.ModelSerializer):
    key_prefix = serializers.CharField(source="token_key", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["key_prefix", "name", "created", "expiry", "last_used_at"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, default="api")
    ttl_days = serializers.IntegerField(
        min_value=1, max_value=365, required=False, help_text="Lifetime in days; default API_TOKEN_TTL_DAYS."
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields
