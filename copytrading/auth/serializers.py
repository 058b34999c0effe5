from rest_framework import serializers

from copytrading.serializers import WalletSerializer


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`; shown only once.")
    expires_at = serializers.DateTimeField()


class RegisterResponseSerializer(TokenResponseSerializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, write_only=True)
    new_password = serializers.CharField(max_length=128, write_only=True)


class LogoutAllResponseSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many live tokens were revoked.")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField(allow_blank=True)
    is_staff = serializers.BooleanField()
    main_wallet = WalletSerializer()
